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
    pieces,
    search,
)
from models.image_classifier import workspace as wsp  # noqa: E402
from models.image_classifier.steps import (  # noqa: E402
    categories,
    clean_losses,
    create_space,
    ensure,
    epochs_of,
    estimate,
    key,
    move,
    need,
    per_category,
    pick,
    pick_loss,
    push,
    remove,
    restore,
    show,
    views,
)
from shared import cancel, device, limits, serve, ui  # noqa: E402
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
and are deleted when you leave (or after {limits.BUILD_SESSION_SECONDS.value / 60:g} idle
minutes)."""


# --- 1. photos -------------------------------------------------------------------------------


def gather(ws_id, names, suffix, per_class, request: gr.Request, progress: gr.Progress):
    """(progress text, workspace) while the web search runs; every input checked first."""
    names = limits.check_text(names, "list of categories", limits.BUILD_CATEGORY_TEXT)
    suffix = limits.check_text(suffix, "words added to each search", limits.BUILD_SUFFIX)
    queries = search.parse_categories(names, suffix)
    per_class = per_category(per_class)
    ws = ensure(ws_id, request)
    # the page's Stop, a closed page or an API caller's cancel (its request's switch) stop it
    with job.searches.hold(key(request), cancel.switch()) as stop:
        for p in search.collect(ws, queries, per_class, stop=stop):
            progress((p.done, p.wanted), desc=f"{p.label or 'done'}: {p.done}/{p.wanted} photos")
            yield p.text(), ws


@ui.errors
@ui.stoppable
def search_photos(ws_id, names, suffix, per_class, request: gr.Request, progress=gr.Progress()):  # noqa: B008
    """Search the web for photos of each category and keep the ones that are real photos
    (checked, de-duplicated) in this session's workspace.

    Args:
        names: the categories, separated by commas (2 to 10), e.g. "grizzly bear, black bear".
        suffix: words added to every search, e.g. "photo".
        per_class: how many photos to keep per category.

    Returns what was kept and skipped with a summary per category, and the session's photos
    (thumbnails captioned with their category).
    """
    text, ws = "", None
    for text, ws in gather(ws_id, names, suffix, per_class, request, progress):
        yield text, gr.skip(), ws.id
    kept = [(str(ws.thumb(p)), label) for label in ws.labels() for p in ws.photos(label)]
    yield f"{text}\n\n{ws.summary()}", kept, ws.id


def find_photos(ws_id, names, suffix, per_class, request: gr.Request, progress=gr.Progress()):  # noqa: B008
    """The page's search: its progress, then the photos to clean."""
    skip = [gr.skip()] * 5
    text, ws = "", None
    for text, ws in gather(ws_id, names, suffix, per_class, request, progress):
        yield f"🔎 {text}", ws.id, *skip
    summary, *rest = views(ws)
    yield f"{text}\n\n{summary}", *rest


def add_uploads(ws_id, files, label, request: gr.Request):
    """Photos (several files, or a zip of one folder per category) under a category."""
    if not files:
        raise UserError("Choose photos or a zip to upload first.")
    label = limits.check_text(label, "category", limits.BUILD_CATEGORY_TEXT)
    ws = ensure(ws_id, request)
    result = ws.add_files([f if isinstance(f, str) else f.name for f in files], label)
    summary, *rest = views(ws, label)
    said = ", ".join(f"{n} {why}" for why, n in result.most_common())
    return f"Upload: {said}.\n\n{summary}", *rest


def add_dataset(ws_id, dataset, per_class, request: gr.Request, progress=gr.Progress()):  # noqa: B008
    """Photos from a public Hub dataset in imagefolder layout."""
    dataset = limits.check_text(dataset, "dataset id", limits.BUILD_DATASET, required=True)
    per_class = per_category(per_class)
    dataset = dataset.strip()
    ws = ensure(ws_id, request)
    outcomes = {}
    with job.searches.hold(key(request)) as stop:
        for done, total, found in hub_data.collect(ws, dataset, per_class, stop):
            progress((done, total), desc=f"{done}/{total} files")
            outcomes = found
            yield f"{done}/{total} files from {dataset}", ws.id, *[gr.skip()] * 5
    summary, *rest = views(ws)
    said = ", ".join(f"{n} {why}" for why, n in outcomes.items())
    yield f"{dataset}: {said}.\n\n{summary}", *rest


def stop_search(request: gr.Request):
    # the search says "Stopped." itself; a "Stopping…" from here could arrive after it
    return gr.skip() if job.searches.stop(key(request)) else "Nothing is searching."


# --- 3. training (steps 2, 4 and 6: models/image_classifier/steps.py) --------------------


@device.gpu(duration=job.gpu_seconds)
def _train(plan: dict, session: str):
    """The run on the accelerator: plain data in and out (a ZeroGPU worker process)."""
    yield from job.run(plan, stop=job.trainings.get(session))


def train(ws_id, base, epochs, request: gr.Request):
    """Fine-tune on the session's photos: live table and loss curve, then the review."""
    ws = need(ws_id)
    p = job.plan(ws.photos_dir, ws.model_dir, ws.counts(), base, epochs_of(epochs))
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


def arm_training(request: gr.Request):
    job.trainings.arm(key(request))


def stop_training(request: gr.Request):
    # the run says "Stopped" itself within a second; a "Stopping…" from here could arrive after it
    return gr.skip() if job.trainings.stop(key(request)) else "Nothing is training."


# --- 5. try it ---------------------------------------------------------------------------------


def model_of(ws_id: str | None):
    ws = wsp.get(ws_id)
    if ws is None:
        raise UserError("Train a model first (step 3); then try it here.")
    return pieces.classifier(ws.model_dir)


def run(ws_id, image, threshold, cam):
    """(prediction, note, threshold) with the session's model, every input checked first."""
    threshold, on = pieces.options(threshold, cam=cam)
    path = pieces.photo(image)
    model = model_of(ws_id)
    picture, note = model.read(path)
    [pred] = model.predict_batch([picture], k=pieces.TOP_K, cam=on["cam"])
    return pred, note, threshold


@ui.errors
@ui.stoppable
def classify_photo(ws_id, image, threshold, cam):
    """Classify a photo with the model this session trained: the answer as data (the
    categories as typed), and a Grad-CAM heatmap over the photo if asked.

    Returns {"label": the category, or None when not sure, "not_sure": true when the best
    confidence is under the threshold, "confidences": [{"label", "confidence"}, ...] best
    first, "note": a remark or None}, and the heatmap.

    Args:
        image: the photo to classify.
        threshold: under this top probability (0-1) the answer is "not sure".
        cam: whether to draw the Grad-CAM heatmap.
    """
    pred, note, threshold = run(ws_id, image, threshold, cam)
    return pieces.result(pred.top, threshold, note), pieces.heatmap_file(pred.heatmap)


def try_it(ws_id, image, threshold, cam):
    """The page's answer: the bars, a sentence, the heatmap, and what rewording needs."""
    pred, note, threshold = run(ws_id, image, threshold, cam)
    labels, words = pieces.shown(pred.top, threshold, note)
    return labels, words, pieces.heatmap_file(pred.heatmap), {"top": pred.top, "note": note}


def bases() -> str:
    """The pretrained models to start from, each described by its own card."""
    return "\n\n".join(ui.describe(name) for name, _ in BASES.values())


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
        gr.Markdown(pieces.caps_table())
    ws_id = gr.State(None)  # the workspace id: a secret only this session holds
    saved = gr.Textbox(visible=False)  # the id, kept in this browser's localStorage for a reload
    ids, selected = gr.State([]), gr.State([])
    loss_ids, loss_selected = gr.State([]), gr.State([])

    gr.Markdown("### 1 · Photos")
    with gr.Tabs():
        with gr.Tab("Search the web"):
            names = gr.Textbox(
                label=f"Categories ({wsp.MIN_CLASSES}–{limits.BUILD_CLASSES.value}, commas)",
                placeholder="grizzly bear, black bear, teddy bear",
                max_length=limits.BUILD_CATEGORY_TEXT.value,
                elem_id="build-names",
            )
            with gr.Row():
                find = gr.Button("Search", variant="primary", elem_id="build-search")
                halt_find = gr.Button("Stop", variant="stop", elem_id="build-search-stop")
            find_status = ui.status(elem_id="build-search-status")
            with gr.Row():
                suffix = gr.Textbox(
                    label="Added to each search (optional)",
                    value="photo",
                    max_length=limits.BUILD_SUFFIX.value,
                )
                per_class = gr.Slider(
                    5,
                    limits.BUILD_PHOTOS_PER_CLASS.value,
                    PER_CLASS,
                    step=1,
                    label="Photos per category",
                    elem_id="build-per-class",
                )
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
            upload_status = ui.status(elem_id="build-upload-status")
        with gr.Tab("Hub dataset"):
            dataset = gr.Textbox(
                label="A public dataset in imagefolder layout (category/photo.jpg)",
                placeholder="owner/name",
                max_length=limits.BUILD_DATASET.value,
                elem_id="build-dataset",
            )
            from_hub = gr.Button("Add photos from the Hub", variant="primary", elem_id="build-hub")
            hub_status = ui.status(elem_id="build-hub-status")
    data_md = gr.Markdown(elem_id="build-data-status")

    gr.Markdown("### 2 · Clean\nClick photos to select them, then remove them or move them.")
    with gr.Row():
        category = gr.Dropdown(label="Category", choices=[], elem_id="build-category")
        target = gr.Dropdown(
            label="Move the selected photos to", choices=[], allow_custom_value=True
        )
    photos = gr.Gallery(
        label="Photos: click to select",
        columns=6,
        height=330,
        allow_preview=False,
        elem_classes=["demo-gallery"],  # three a row on a phone (shared.ui.CSS)
        elem_id="build-gallery",
    )
    with gr.Row():
        drop = gr.Button("Remove selected", variant="stop", size="sm", elem_id="build-remove")
        relabel = gr.Button("Move selected", size="sm")
    clean_status = ui.status(elem_id="build-clean-status")

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
        # their pinned commits (no fetch); their cards' stories when a page opens
        pins = "\n\n".join(ui.model_info(name) for name, _ in BASES.values())
        bases_md = gr.Markdown(pins, elem_id="build-bases")
    with gr.Row():
        start = gr.Button("Train", variant="primary", elem_id="build-train")
        halt = gr.Button("Stop", variant="stop", elem_id="build-train-stop")
    train_status = ui.status(elem_id="build-train-status")
    train_md = gr.Markdown(elem_id="build-train-progress")
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
        elem_classes=["demo-gallery"],  # three a row on a phone (shared.ui.CSS)
        elem_id="build-losses",
    )
    with gr.Row():
        loss_target = gr.Dropdown(label="Move them to (empty: remove)", choices=[])
        clean_loss = gr.Button("Remove or move selected", size="sm", elem_id="build-clean-loss")
        retrain = gr.Button("Retrain", variant="primary", size="sm", elem_id="build-retrain")
    loss_status = ui.status(elem_id="build-loss-status")

    gr.Markdown("### 5 · Try it")
    panel = pieces.TryIt.build("build")

    gr.Markdown("### 6 · Share it")
    pieces.login_button("build-login")
    with gr.Row():
        repo_name = gr.Textbox(
            label="Model repo name",
            value="my-classifier",
            max_length=limits.BUILD_NAME.value,
            elem_id="build-repo",
        )
        private = gr.Checkbox(label="Private", value=False)
        publish = gr.Button("Push to my account", variant="primary", elem_id="build-push")
    share_status = ui.status(elem_id="build-share-status")
    share_md = gr.Markdown(elem_id="build-share")
    with gr.Row():
        space_name = gr.Textbox(
            label="Space name", value="my-classifier-demo", max_length=limits.BUILD_NAME.value
        )
        make_space = gr.Button("Create my Space", interactive=False, elem_id="build-space")
    space_status = ui.status(elem_id="build-space-status")
    space_md = gr.Markdown(elem_id="build-space-result")
    api_text = gr.Markdown(visible=False)
    api_photos = gr.Gallery(visible=False, label="The session's photos")
    api_result = gr.JSON(visible=False, label="The answer: label, not_sure, confidences")
    api_button = gr.Button(visible=False)  # carries the API endpoints below

    # page events: a failure shows in the status line under the control (ui.reported)
    ui_only = {"api_visibility": "private"}  # the API is /search_photos and /classify_photo
    slow = {"concurrency_limit": 4, "concurrency_id": "build-data", **ui_only}
    changed = [data_md, ws_id, category, target, photos, ids, selected]
    keep = (False,) * 7  # a failed step leaves the photos as they were
    costs = [ws_id, base, epochs]
    plan = ui.reported(estimate, clear=(False,))
    searching = find.click(
        ui.reported(find_photos, clear=keep),
        [ws_id, names, suffix, per_class],
        [*changed, find_status],
        **slow,
    )
    halt_find.click(stop_search, None, find_status, queue=False, **ui_only)
    uploading = upload.click(
        ui.reported(add_uploads, clear=keep),
        [ws_id, files, upload_label],
        [*changed, upload_status],
        **slow,
    )
    hub_adding = from_hub.click(
        ui.reported(add_dataset, clear=keep),
        [ws_id, dataset, per_class],
        [*changed, hub_status],
        **slow,
    )
    category.change(
        ui.reported(show, clear=(False, False, False)),
        [ws_id, category],
        [photos, ids, selected, clean_status],
        **ui_only,
    )
    photos.select(
        ui.reported(pick, clear=(False, False)),
        [ids, selected, ws_id, category],
        [photos, selected, clean_status],
        **ui_only,
    )
    removing = drop.click(
        ui.reported(remove, clear=keep),
        [ws_id, selected, category],
        [*changed, clean_status],
        **ui_only,
    )
    moving = relabel.click(
        ui.reported(move, clear=keep),
        [ws_id, selected, category, target],
        [*changed, clean_status],
        **ui_only,
    )
    for event in (searching, uploading, hub_adding, removing, moving):
        event.then(plan, costs, [plan_md, train_status], **ui_only).then(
            lambda v: v, ws_id, saved, **ui_only
        ).then(None, saved, None, js=f"(v) => {{ localStorage.setItem('{STORE}', v || ''); }}")
    gr.on([base.change, epochs.change], plan, costs, [plan_md, train_status], **ui_only)

    trained = [train_md, table, curve, confusion, per_class_df, losses, loss_ids, loss_selected]
    # one run at a time is the job's line (job.turn), which shows each its place
    for button in (start, retrain):
        button.click(arm_training, None, None, queue=False, **ui_only).then(
            ui.reported(train, clear=(True, *(False,) * 7)),
            [ws_id, base, epochs],
            [*trained, train_status],
            concurrency_limit=8,
            **ui_only,
        ).then(categories, ws_id, loss_target, **ui_only)
    halt.click(stop_training, None, train_status, queue=False, **ui_only)
    losses.select(
        ui.reported(pick_loss, clear=(False, False)),
        [loss_ids, loss_selected, ws_id],
        [losses, loss_selected, loss_status],
        **ui_only,
    )
    clean_loss.click(
        ui.reported(clean_losses, clear=(False,) * 4),
        [ws_id, loss_selected, loss_target],
        [losses, loss_ids, loss_selected, data_md, loss_status],
        **ui_only,
    ).then(plan, costs, [plan_md, train_status], **ui_only)

    panel.listen(try_it, before=[ws_id], api_visibility="private")
    publish.click(
        ui.reported(push, clear=(True, False)),
        [ws_id, repo_name, private],
        [share_md, make_space, share_status],
        **ui_only,
    )
    make_space.click(
        ui.reported(create_space, clear=(True,)),
        [ws_id, space_name],
        [space_md, space_status],
        **ui_only,
    )
    # the API: data, and a failure raised for the caller (ui.errors)
    api = {"concurrency_limit": 4, "concurrency_id": "build-data"}
    api_button.click(
        search_photos,
        [ws_id, names, suffix, per_class],
        [api_text, api_photos, ws_id],
        api_name="search_photos",
        preprocess=False,  # what the caller sent, checked as it is (not turned into text)
        **api,
    )
    api_button.click(
        classify_photo,
        [ws_id, *panel.inputs],
        [api_result, panel.heatmap],
        api_name="classify_photo",
        preprocess=False,  # the photo untouched: read_image checks it (pieces.read_upload)
    )
    # a reload (signing in is one) takes back the workspace this browser kept
    demo.load(None, None, saved, js=f"() => localStorage.getItem('{STORE}') || ''").then(
        ui.reported(restore, clear=(False,) * 11),
        [saved, ws_id],
        [*changed, confusion, per_class_df, losses, loss_ids, find_status],
        **ui_only,
    ).then(plan, costs, [plan_md, train_status], **ui_only)
    # the bases' own stories (their cards, at the pinned commits): fetched when a page opens
    demo.load(bases, None, bases_md, **ui_only)
    demo.unload(end)

if __name__ == "__main__":
    serve.launch(demo, max_file_size=limits.BUILD_PHOTO_BYTES.value)
