"""Image classifier Space: what breed is this pet? Top-k labels, Grad-CAM, test-time augmentation.

The model (a timm classifier fine-tuned with `python -m shared.cli train image-classifier`) loads
from the Hub on first use; set DEMO_MODEL_PETS_CLASSIFIER to serve your own. The page and the
API share the work (`run`); the page shows labels as people write them and a sentence, the API
returns data with the model's own labels.
"""

import sys
from pathlib import Path

here = Path(__file__).resolve().parent
# in the repo shared/ is two levels up; in a deployed Space it sits beside app.py
if not (here / "shared").is_dir():
    sys.path.insert(0, str(here.parents[1]))

import functools  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import gradio as gr  # noqa: E402

from models.image_classifier import NAME, pieces  # noqa: E402  (light: no torch)
from shared import limits, registry, serve, ui  # noqa: E402
from shared.device import gpu  # noqa: E402
from shared.errors import UserError  # noqa: E402

TOP_K = pieces.TOP_K

ABOUT = """Upload a photo of a cat or a dog (or take one with your webcam, or paste one) and the
classifier names its breed, with its confidence in the five likeliest breeds. It is the first
project of fast.ai's *Practical Deep Learning* course: a pretrained timm model fine-tuned on the
Oxford-IIIT Pet data set (the model below says which). **Grad-CAM** colours the parts of the
photo that pushed the model towards its answer (the dimmed margins are outside the square the
model looks at); **test-time augmentation** averages ten crops and mirror images for a steadier
answer. When the best guess is under the confidence threshold the demo says it is not sure
instead of forcing a breed: a photo of a car is not a pug. The API (`/predict`, `/classify`)
returns the model's own labels (`american_bulldog`); the page writes them for people."""


@gpu(duration=30)  # a ZeroGPU slot when the suite runs on one; a no-op elsewhere
def infer(pictures: list, tta: bool = False, cam: bool = False) -> list:
    """The model's work alone, on plain data: decoded pictures in, predictions out. On ZeroGPU
    this runs in a worker process, so it takes the model from the registry's cache there."""
    return registry.load(NAME).predict_batch(pictures, k=TOP_K, tta=tta, cam=cam)


def run(image: dict | None, tta: object, threshold: object, cam: object):
    """(prediction, note, threshold) for one photo, every input checked first."""
    threshold, on = pieces.options(threshold, tta=tta, cam=cam)
    path = pieces.photo(image)
    picture, note = registry.load(NAME).read(path)
    [pred] = infer([picture], on["tta"], on["cam"])
    return pred, note, threshold


@ui.errors
@ui.stoppable
def predict(image: dict | None, tta: bool, threshold: float, cam: bool):
    """Name the breed of the pet in a photo: the answer as data (the model's own labels), and
    a Grad-CAM heatmap over the photo if asked.

    Returns {"label": the breed, or None when not sure, "not_sure": true when the best
    confidence is under the threshold, "confidences": [{"label", "confidence"}, ...] best
    first, "note": a remark such as "animated: its first frame" or None}, and the heatmap.

    Args:
        image: the photo of a cat or a dog (JPEG, PNG, WebP, GIF or BMP).
        tta: test-time augmentation: average ten crops and mirror images (slower, steadier).
        threshold: under this top confidence (0 to 1) the answer is "not sure".
        cam: also return a Grad-CAM heatmap of where the model looked.
    """
    pred, note, threshold = run(image, tta, threshold, cam)
    return pieces.result(pred.top, threshold, note), pieces.heatmap_file(pred.heatmap)


def show(image: dict | None, tta: bool, threshold: float, cam: bool):
    """The page's answer: readable labels, a sentence, the heatmap, and what rewording needs."""
    pred, note, threshold = run(image, tta, threshold, cam)
    labels, words = pieces.shown(pred.top, threshold, note)
    return labels, words, pieces.heatmap_file(pred.heatmap), {"top": pred.top, "note": note}


@ui.errors
@ui.stoppable
def classify(images: list[dict | None]) -> tuple[list]:
    """Name the breed of the pet in a photo: the five likeliest labels with their confidences.

    Concurrent requests arrive here together (up to limits.BATCH_IMAGES) and share one forward
    pass. An unreadable image fails its request alone: with others in the batch, its answer
    names the problem instead.

    Args:
        images: the photo of a cat or a dog (JPEG, PNG, WebP, GIF or BMP).
    """
    model = registry.load(NAME)
    pictures, problems = [], []
    for image in images[: limits.BATCH_IMAGES.value]:
        try:
            pictures.append(model.read(pieces.photo(image))[0])
            problems.append(None)
        except UserError as e:
            problems.append(str(e))
    if len(images) == 1 and problems[0]:
        raise UserError(problems[0])
    preds = iter(infer(pictures))
    return ([f"Error: {problem}" if problem else next(preds).top for problem in problems],)


# --- the example photos: shown at once, without loading the model -------------------------------


@functools.lru_cache(maxsize=4)
def _examples(source: tuple[str, str | None]) -> tuple[str, ...]:
    """The model repo's examples/ (only those files are fetched), copied where gradio serves
    files from (the Hub cache is not such a place)."""
    repo, revision = source
    value = repo if revision is None else f"{repo}@{revision}"
    folder = registry.resolve(value, ["examples/*"], name=NAME) / "examples"
    found = sorted(folder.glob("*")) if folder.is_dir() else []
    served = Path(tempfile.mkdtemp(prefix="pets-examples-"))
    for p in found:
        shutil.copy(p, served / p.name)
    return tuple(str(served / p.name) for p in found)


def examples() -> list[tuple[str, str]]:
    """The example photos, each captioned with its class (a `UserError` when there are none:
    not published yet, offline, or a repo without examples/)."""
    files = _examples(registry.source(NAME))
    if not files:
        raise UserError("This model repo has no example photos: upload your own.")
    captions = [pieces.pretty(re.sub(r"^\d+-", "", Path(f).stem)) for f in files]
    return list(zip(files, captions, strict=True))


def pick(evt: gr.SelectData) -> str:
    """The clicked example becomes the photo."""
    return evt.value["image"]["path"]


with gr.Blocks(title="Pet breed classifier") as demo:
    gr.Markdown("## 🐾 What breed is this pet?")
    panel = pieces.TryIt.build("pets", tta=True)
    gr.Markdown("**Or try an example photo** from the model repo (tap one):")
    gallery = gr.Gallery(
        show_label=False,
        columns=6,
        height=240,  # one row of six on a desk; on a phone two rows of three
        object_fit="cover",
        allow_preview=False,
        interactive=False,
        buttons=[],
        elem_id="pets-examples",
        elem_classes=["demo-gallery"],  # three a row on a phone (shared.ui.CSS)
    )
    examples_status = ui.status(elem_id="pets-examples-status")
    # where the model comes from (its pinned commit, no fetch); its card's story on page load
    model_md = gr.Markdown(ui.model_info(NAME), elem_id="pets-model")
    with gr.Accordion("About this demo", open=False):
        gr.Markdown(ABOUT)
    api_result = gr.JSON(visible=False, label="The answer: label, not_sure, confidences")
    api_button = gr.Button(visible=False)  # carries the API endpoints below

    # preprocess=False: the handlers get the uploaded file untouched (pieces.read_upload)
    busy = {"concurrency_limit": 1, "concurrency_id": "image-classifier"}
    panel.listen(show, api_visibility="private", **busy)
    busy["preprocess"] = False
    api_button.click(predict, panel.inputs, [api_result, panel.heatmap], api_name="predict", **busy)
    api_button.click(
        classify,
        panel.image,
        panel.labels,
        api_name="classify",
        batch=True,
        max_batch_size=limits.BATCH_IMAGES.value,
        **busy,
    )
    gallery.select(pick, None, panel.image, api_visibility="private").then(
        ui.reported(ui.stoppable(show), clear=(True, True, True, True)),
        panel.inputs,
        panel.outputs,
        api_visibility="private",
        **busy,
    )
    # fetched when a page opens, never at build time: the model's own story, its examples
    demo.load(lambda: ui.describe(NAME), None, model_md, api_visibility="private")
    demo.load(
        ui.reported(examples, clear=(True,)),
        None,
        [gallery, examples_status],
        api_visibility="private",
    )

if __name__ == "__main__":
    serve.launch(demo)
