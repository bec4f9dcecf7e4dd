"""Build your own classifier: lesson 1's "is it a bird?" and lesson 2's cleaning, in a browser.

Name a few categories and search the web for photos (or upload them, or give a Hub dataset),
clean them, fine-tune a pretrained timm model, look at what it gets wrong and clean again, try
it, and push it to your own Hugging Face account, with a Space of your own if you like.

This file is the UI only: the searching, the session's photos, the training run, the review
and the sharing live in the family package, models/image_classifier/.
"""

import sys
from pathlib import Path

here = Path(__file__).resolve().parent
# in the repo shared/ is two levels up; in a deployed Space it sits beside app.py
if not (here / "shared").is_dir():
    sys.path.insert(0, str(here.parents[1]))

import os  # noqa: E402
import time  # noqa: E402

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from models.image_classifier import (  # noqa: E402  (all light: no torch)
    BASES,
    cleaner,
    hub_data,
    job,
    limits,
    pieces,
    search,
    share,
)
from models.image_classifier import workspace as wsp  # noqa: E402
from shared import device, serve, ui  # noqa: E402
from shared.errors import UserError  # noqa: E402

GPU = device.likely_gpu()
ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in {"1", "t", "true"}
STORE = "build-classifier-workspace"  # the localStorage key of this browser's workspace id
PER_CLASS = 60 if GPU else 30  # photos to look for per category, by default
BASE_CHOICES = [
    (f"Fast: {job.base_name('cpu')} (good on a CPU)", "cpu"),
    (f"Best: {job.base_name('gpu')} (needs a GPU to be quick)", "gpu"),
]

INTRO = f"""Type a few categories (say *grizzly bear, black bear, teddy bear*): the demo searches
the web for photos of each, you remove the bad ones, and a pretrained model is fine-tuned on
them in a few minutes on this {"GPU" if GPU else "CPU"}. Then look at what it gets wrong, clean
again, try it on your own photos and push it to your Hugging Face account. This is lessons 1
and 2 of fast.ai's *Practical Deep Learning*. Your photos and model live only in your session
and are deleted when you leave (or after {limits.SESSION_SECONDS.value / 60:g} idle minutes)."""


def key(request: gr.Request | None) -> str:
    return request.session_hash if request and request.session_hash else "local"


def need(ws_id: str | None) -> wsp.Workspace:
    ws = wsp.get(ws_id)
    if ws is None:
        raise UserError("No photos yet (or they expired): search or upload some first (step 1).")
    return ws


def ensure(ws_id: str | None, request: gr.Request | None) -> wsp.Workspace:
    return wsp.get(ws_id) or wsp.create(key(request))


def views(ws: wsp.Workspace, label: str | None = None) -> tuple:
    """After the photos changed: the summary, the category picker, its gallery, the plan."""
    labels = ws.labels()
    label = label if label in labels else (labels[0] if labels else None)
    photos, ids = cleaner.category(ws, label)
    return (
        ws.summary(),
        ws.id,
        gr.Dropdown(choices=labels, value=label),
        gr.Dropdown(choices=labels, value=None),
        photos,
        ids,
        [],
    )


# --- 1. photos -------------------------------------------------------------------------------


@pieces.shown(7)
def search_photos(ws_id, names, suffix, per_class, request: gr.Request, progress=gr.Progress()):  # noqa: B008
    """Search the web for photos of each category and keep the ones that are real photos
    (checked, de-duplicated) in this session's workspace.

    Args:
        names: the categories, separated by commas (2 to 10), e.g. "grizzly bear, black bear".
        suffix: words added to every search, e.g. "photo".
        per_class: how many photos to keep per category.
    """
    queries = search.parse_categories(names, suffix)
    ws = ensure(ws_id, request)
    with job.searches.hold(key(request)) as stop:
        for p in search.collect(ws, queries, int(per_class), stop=stop):
            progress((p.done, p.wanted), desc=f"{p.label or 'done'}: {p.done}/{p.wanted} photos")
            yield f"🔎 {p.text()}", ws.id, *[gr.skip()] * 5
    summary, *rest = views(ws)
    yield f"{p.text()}\n\n{summary}", *rest


@pieces.shown(7)
def add_uploads(ws_id, files, label, request: gr.Request):
    """Photos (several files, or a zip of one folder per category) under a category."""
    if not files:
        raise UserError("Choose photos or a zip to upload first.")
    ws = ensure(ws_id, request)
    result = ws.add_files([f if isinstance(f, str) else f.name for f in files], label)
    summary, *rest = views(ws, label)
    said = ", ".join(f"{n} {why}" for why, n in result.most_common())
    return f"Upload: {said}.\n\n{summary}", *rest


@pieces.shown(7)
def add_dataset(ws_id, dataset, per_class, request: gr.Request, progress=gr.Progress()):  # noqa: B008
    """Photos from a public Hub dataset in imagefolder layout."""
    if not (dataset or "").strip():
        raise UserError("Type a Hub dataset id, like owner/name.")
    ws = ensure(ws_id, request)
    outcomes = {}
    with job.searches.hold(key(request)) as stop:
        for done, total, found in hub_data.collect(ws, dataset, int(per_class), stop):
            progress((done, total), desc=f"{done}/{total} files")
            outcomes = found
            yield f"{done}/{total} files from {dataset.strip()}", ws.id, *[gr.skip()] * 5
    summary, *rest = views(ws)
    said = ", ".join(f"{n} {why}" for why, n in outcomes.items())
    yield f"{dataset.strip()}: {said}.\n\n{summary}", *rest


def stop_search(request: gr.Request):
    return "⏹ Stopping…" if job.searches.stop(key(request)) else gr.skip()


# --- 2. and 4. cleaning ------------------------------------------------------------------------


@pieces.shown(4)
def show(ws_id, label):
    photos, ids = cleaner.category(need(ws_id), label)
    return "", photos, ids, []


@pieces.shown(3)
def pick(ids, selected, ws_id, label, evt: gr.SelectData):
    selected = cleaner.toggle(ids, selected, evt.index)
    photos, _ = cleaner.category(need(ws_id), label, selected)
    return f"{len(selected)} selected", photos, selected


@pieces.shown(8)
def remove(ws_id, selected, label):
    ws = need(ws_id)
    if not selected:
        raise UserError("Click the photos to remove first.")
    n = ws.remove(selected)
    return f"Removed {n} photo(s).", *views(ws, label)[1:], ws.summary()


@pieces.shown(8)
def move(ws_id, selected, label, target):
    ws = need(ws_id)
    if not selected or not target:
        raise UserError("Click the photos to move, then pick the category they belong to.")
    n = ws.move(selected, target)
    return f"Moved {n} photo(s) to {target}.", *views(ws, label)[1:], ws.summary()


@pieces.shown(3)
def pick_loss(ids, selected, ws_id, evt: gr.SelectData):
    selected = cleaner.toggle(ids, selected, evt.index)
    ws = need(ws_id)
    photos, _ = cleaner.top_losses(ws, ws.review, selected)
    return f"{len(selected)} selected", photos, selected


@pieces.shown(5)
def clean_losses(ws_id, selected, target):
    """Remove (no target) or move the selected top-loss photos."""
    ws = need(ws_id)
    if not selected:
        raise UserError("Click the photos to clean first.")
    n = ws.move(selected, target) if target else ws.remove(selected)
    photos, ids = cleaner.top_losses(ws, ws.review)
    what = f"Moved {n} to {target}" if target else f"Removed {n}"
    return f"{what}. Retrain to see the difference.", photos, ids, [], ws.summary()


# --- 3. training -------------------------------------------------------------------------------


@pieces.shown(1)
def estimate(ws_id, base, epochs):
    ws = wsp.get(ws_id)
    if ws is None or len(ws.labels()) < limits.MIN_CLASSES:
        return "Add photos of at least two categories, then the time estimate shows here."
    return job.plan(ws.photos_dir, ws.model_dir, ws.counts(), base, int(epochs)).describe()


@device.gpu(duration=job.gpu_seconds)
def _train(plan: dict, session: str):
    """The run on the accelerator: plain data in and out (a ZeroGPU worker process)."""
    yield from job.run(plan, stop=job.trainings.get(session))


@pieces.shown(8)
def train(ws_id, base, epochs, request: gr.Request):
    """Fine-tune on the session's photos: live table and loss curve, then the review."""
    ws = need(ws_id)
    p = job.plan(ws.photos_dir, ws.model_dir, ws.counts(), base, int(epochs))
    view, last, skip = cleaner.RunView(), 0.0, [gr.skip()] * 5
    with job.trainings.hold(key(request)) as stop, job.turn(key(request), stop) as places:
        for place in places:
            yield f"⏳ Waiting for the training slot: {place} ahead of you.", *skip, *skip[:2]
        yield f"🏋️ {p.describe()}", [], None, *skip
        events = _train(vars(p), key(request))
        for kind, item in events:
            if ZERO_GPU and stop.is_set() and kind == "step":  # the run is in another process
                events.close()  # which stops it there
                yield "⏹ Stopped: this run's model was dropped.", *skip, *skip[:2]
                break
            if kind == "step":
                text = view.step(item)
                if time.monotonic() - last > 0.5:  # at most two updates a second
                    last = time.monotonic()
                    yield text, gr.skip(), pd.DataFrame(view.points), *skip
            elif kind == "epoch":
                yield view.epoch(item), view.rows, pd.DataFrame(view.points), *skip
            elif kind in ("phase", "stopped"):
                yield f"{'🔬' if kind == 'phase' else '⏹'} {item}", *skip, *skip[:2]
            elif kind == "done":
                ws.review, ws.base = item, base
                text, per_class = view.done(item)
                photos, ids = cleaner.top_losses(ws, item)
                confusion = item["confusion"]
                yield text, gr.skip(), gr.skip(), confusion, per_class, photos, ids, []


def categories(ws_id):
    ws = wsp.get(ws_id)
    return gr.Dropdown(choices=ws.labels() if ws else [], value=None)


def arm_training(request: gr.Request):
    job.trainings.arm(key(request))


def stop_training(request: gr.Request):
    # the run says "Stopped" itself within a second; a "Stopping…" from here could arrive after it
    return gr.skip() if job.trainings.stop(key(request)) else "Nothing is training."


# --- 5. try it, 6. share ------------------------------------------------------------------------


@ui.errors
def classify_photo(ws_id, image, threshold, cam):
    """Classify a photo with the model this session trained: the likeliest categories, the
    answer in words ("not sure" under the threshold) and a Grad-CAM heatmap.

    Args:
        image: the photo to classify.
        threshold: under this top probability (0-1) the answer is "not sure".
        cam: whether to draw the Grad-CAM heatmap.
    """
    return pieces.answer(lambda: pieces.classifier(need(ws_id).model_dir), image, threshold, cam)


@pieces.shown(2)
def push(ws_id, name, private, profile: gr.OAuthProfile | None, token: gr.OAuthToken | None):
    """Push the model to the signed-in visitor's account, with their token (used only here)."""
    ws = need(ws_id)
    if profile is None or token is None:
        raise UserError("Sign in with Hugging Face first (the button above).")
    if not getattr(ws, "review", None):
        raise UserError("Train a model first (step 3), then push it.")
    repo = share.repo_for(profile.username, name)
    commit = share.push(ws, repo, ws.base, ws.review, share.hub_token(token.token), private)
    ws.pushed = (repo, commit, private)
    links = share.links(repo)
    return (
        f"✅ Pushed to [{repo}]({links['page']}) (commit `{commit[:8]}`).\n\n"
        f"Load it anywhere with timm:\n```python\nimport timm\n{links['timm']}\n```\n"
        f"Serve it with the pets demo:\n```bash\n{links['serve']}\n```",
        gr.Button(interactive=True),
    )


@pieces.shown(1)
def create_space(ws_id, name, profile: gr.OAuthProfile | None, token: gr.OAuthToken | None):
    ws = need(ws_id)
    if profile is None or token is None:
        raise UserError("Sign in with Hugging Face first (the button above).")
    repo, commit, private = getattr(ws, "pushed", (None, None, None))
    if repo is None:
        raise UserError("Push the model first: your Space serves it.")
    if private:
        raise UserError("Your Space needs the model to be public; push it without 'Private'.")
    space = share.repo_for(profile.username, name)
    share.create_space(repo, commit, space, share.hub_token(token.token))
    return f"✅ Your Space: [{space}]({share.space_page(space)}), serving {repo}@{commit[:8]}."


def restore(saved, ws_id, request: gr.Request):
    """A reload (signing in reloads the page) takes this browser's workspace back, if any."""
    ws = wsp.claim(saved, key(request)) if saved != ws_id else None
    if ws is None:
        return [gr.skip()] * 11
    photos, ids = cleaner.top_losses(ws, ws.review)
    review = (ws.review["confusion"], cleaner.RunView.done(ws.review)[1]) if ws.review else ()
    return *views(ws), *(review or [gr.skip()] * 2), photos, ids


def end(request: gr.Request):
    """The session ended: stop its runs; its photos and model go unless a reload claims them."""
    job.searches.stop(key(request))
    job.trainings.stop(key(request))
    wsp.release(key(request))


# gradio keeps copies of the photos it shows: delete those older than a session, hourly
with gr.Blocks(title="Build your own classifier", delete_cache=(3600, 3600)) as demo:
    gr.Markdown("## 🐦 Build your own classifier")
    gr.Markdown(INTRO)
    with gr.Accordion("Limits, and why", open=False):
        gr.Markdown(limits.table())
    ws_id = gr.State(None)  # the workspace id: a secret only this session holds
    saved = gr.Textbox(visible=False)  # the id, kept in this browser's localStorage for a reload
    ids, selected = gr.State([]), gr.State([])
    loss_ids, loss_selected = gr.State([]), gr.State([])

    gr.Markdown("### 1 · Photos")
    with gr.Tabs():
        with gr.Tab("Search the web"):
            names = gr.Textbox(
                label=f"Categories ({limits.MIN_CLASSES}–{limits.CLASSES.value:g}, commas between)",
                placeholder="grizzly bear, black bear, teddy bear",
                elem_id="build-names",
            )
            with gr.Row():
                suffix = gr.Textbox(label="Added to each search (optional)", value="photo")
                per_class = gr.Slider(
                    5,
                    limits.PHOTOS_PER_CLASS.value,
                    PER_CLASS,
                    step=1,
                    label="Photos per category",
                    elem_id="build-per-class",
                )
            with gr.Row():
                find = gr.Button("Search", variant="primary", elem_id="build-search")
                halt_find = gr.Button("Stop", variant="stop", elem_id="build-search-stop")
        with gr.Tab("Upload"):
            files = gr.File(
                label="Photos, or a zip with a folder per category",
                file_count="multiple",
                file_types=["image", ".zip"],
                height=120,
                elem_id="build-files",
            )
            with gr.Row():
                upload_label = gr.Textbox(label="Their category (a zip: its folders)")
                upload = gr.Button("Add photos", variant="primary", elem_id="build-upload")
        with gr.Tab("Hub dataset"):
            dataset = gr.Textbox(
                label="A public dataset in imagefolder layout (category/photo.jpg)",
                placeholder="owner/name",
                elem_id="build-dataset",
            )
            from_hub = gr.Button("Add photos from the Hub", variant="primary", elem_id="build-hub")
    data_status = gr.Markdown(elem_id="build-data-status")

    gr.Markdown("### 2 · Clean\nClick photos to select them, then remove them or move them.")
    with gr.Row():
        category = gr.Dropdown(label="Category", choices=[], elem_id="build-category")
        target = gr.Dropdown(
            label="Move the selected photos to", choices=[], allow_custom_value=True
        )
    photos = gr.Gallery(
        label="Photos", columns=6, height=330, allow_preview=False, elem_id="build-gallery"
    )
    with gr.Row():
        clean_status = gr.Markdown(elem_id="build-clean-status")
        drop = gr.Button("Remove selected", variant="stop", size="sm", elem_id="build-remove")
        relabel = gr.Button("Move selected", size="sm")

    gr.Markdown("### 3 · Train")
    with gr.Row():
        base = gr.Radio(BASE_CHOICES, value="gpu" if GPU else "cpu", label="Pretrained model")
        epochs = gr.Slider(
            1,
            10,
            3,
            step=1,
            label="Epochs (after one with the body frozen)",
            elem_id="build-epochs-n",
        )
    plan_md = gr.Markdown(estimate(None, "cpu", 3), elem_id="build-plan")
    with gr.Accordion("Where the pretrained models come from", open=False):
        gr.Markdown("\n\n".join(ui.model_info(name) for name, _ in BASES.values()))
    with gr.Row():
        start = gr.Button("Train", variant="primary", elem_id="build-train")
        halt = gr.Button("Stop", variant="stop", elem_id="build-train-stop")
    train_status = gr.Markdown(elem_id="build-train-status")
    with gr.Row(equal_height=False):
        table = gr.Dataframe(
            headers=cleaner.HEADERS,
            label="Epochs",
            interactive=False,
            elem_id="build-epochs",
        )
        curve = gr.LinePlot(
            x="step",
            y="loss",
            color="series",
            color_map={"train": "#2563eb", "valid": "#ea580c"},
            label="Loss: every batch (train) and every epoch (valid)",
            height=280,
        )

    gr.Markdown("### 4 · Look and clean again")
    with gr.Row(equal_height=False):
        confusion = gr.Image(
            label="Confusion matrix (validation photos)",
            interactive=False,
            height=340,
            elem_id="build-confusion",
        )
        per_class_df = gr.Dataframe(
            headers=["category", "accuracy"], label="Per-category accuracy", interactive=False
        )
    losses = gr.Gallery(
        label="Top losses: actual → predicted (probability). Click to select.",
        columns=6,
        height=330,
        allow_preview=False,
        elem_id="build-losses",
    )
    with gr.Row():
        loss_status = gr.Markdown(elem_id="build-loss-status")
        loss_target = gr.Dropdown(label="Move them to (empty: remove)", choices=[])
        clean_loss = gr.Button("Remove or move selected", size="sm", elem_id="build-clean-loss")
        retrain = gr.Button("Retrain", variant="primary", size="sm", elem_id="build-retrain")

    gr.Markdown("### 5 · Try it")
    panel = pieces.TryIt.build("build")

    gr.Markdown("### 6 · Share it")
    pieces.login_button("build-login")
    with gr.Row():
        repo_name = gr.Textbox(label="Model repo name", value="my-classifier", elem_id="build-repo")
        private = gr.Checkbox(label="Private", value=False)
        publish = gr.Button("Push to my account", variant="primary", elem_id="build-push")
    share_status = gr.Markdown(elem_id="build-share-status")
    with gr.Row():
        space_name = gr.Textbox(label="Space name", value="my-classifier-demo")
        make_space = gr.Button("Create my Space", interactive=False, elem_id="build-space")
    space_status = gr.Markdown(elem_id="build-space-status")

    changed = [data_status, ws_id, category, target, photos, ids, selected]
    costs = [ws_id, base, epochs]
    slow = {"concurrency_limit": 4, "concurrency_id": "build-data"}
    searching = find.click(
        search_photos, [ws_id, names, suffix, per_class], changed, api_name="search_photos", **slow
    )
    halt_find.click(stop_search, None, data_status, queue=False, api_visibility="private")
    ui_only = {"api_visibility": "private"}  # the API is /search_photos and /classify_photo
    uploading = upload.click(add_uploads, [ws_id, files, upload_label], changed, **slow, **ui_only)
    hub_adding = from_hub.click(
        add_dataset, [ws_id, dataset, per_class], changed, **slow, **ui_only
    )
    category.change(show, [ws_id, category], [clean_status, photos, ids, selected], **ui_only)
    photos.select(
        pick, [ids, selected, ws_id, category], [clean_status, photos, selected], **ui_only
    )
    cleaned = [clean_status, *changed[1:], data_status]  # the message beside the buttons
    removing = drop.click(remove, [ws_id, selected, category], cleaned, **ui_only)
    moving = relabel.click(move, [ws_id, selected, category, target], cleaned, **ui_only)
    for event in (searching, uploading, hub_adding, removing, moving):
        event.then(estimate, costs, plan_md, api_visibility="private").then(
            lambda v: v, ws_id, saved, api_visibility="private"
        ).then(None, saved, None, js=f"(v) => {{ localStorage.setItem('{STORE}', v || ''); }}")
    gr.on([base.change, epochs.change], estimate, costs, plan_md, api_visibility="private")

    trained = [train_status, table, curve, confusion, per_class_df, losses, loss_ids]
    trained.append(loss_selected)
    # one run at a time is the job's line (job.turn), which shows each its place
    for button in (start, retrain):
        button.click(arm_training, None, None, queue=False, api_visibility="private").then(
            train, [ws_id, base, epochs], trained, concurrency_limit=8, **ui_only
        ).then(categories, ws_id, loss_target, api_visibility="private")
    halt.click(stop_training, None, train_status, queue=False, api_visibility="private")
    losses.select(
        pick_loss, [loss_ids, loss_selected, ws_id], [loss_status, losses, loss_selected], **ui_only
    )
    clean_loss.click(
        clean_losses,
        [ws_id, loss_selected, loss_target],
        [loss_status, losses, loss_ids, loss_selected, data_status],
        **ui_only,
    ).then(estimate, costs, plan_md, api_visibility="private")

    gr.on(
        [panel.button.click, panel.image.input, panel.cam.input, panel.threshold.release],
        classify_photo,
        [ws_id, *panel.inputs],
        panel.outputs,
        preprocess=False,
        trigger_mode="always_last",
        api_name="classify_photo",
    )
    publish.click(push, [ws_id, repo_name, private], [share_status, make_space], **ui_only)
    make_space.click(create_space, [ws_id, space_name], space_status, **ui_only)
    # a reload (signing in is one) takes back the workspace this browser kept
    demo.load(None, None, saved, js=f"() => localStorage.getItem('{STORE}') || ''").then(
        restore,
        [saved, ws_id],
        [*changed, confusion, per_class_df, losses, loss_ids],
        api_visibility="private",
    ).then(estimate, costs, plan_md, api_visibility="private")
    demo.unload(end)

if __name__ == "__main__":
    serve.launch(demo, max_file_size=limits.PHOTO_BYTES.value)
