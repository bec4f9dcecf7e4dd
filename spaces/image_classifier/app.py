"""Image classifier Space: what breed is this pet? Top-k labels, Grad-CAM, test-time augmentation.

The model (a timm classifier fine-tuned with `python -m shared.cli train image-classifier`) loads
from the Hub on first use; set DEMO_MODEL_PETS_CLASSIFIER to serve your own.
"""

import sys
from pathlib import Path

here = Path(__file__).resolve().parent
# in the repo shared/ is two levels up; in a deployed Space it sits beside app.py
if not (here / "shared").is_dir():
    sys.path.insert(0, str(here.parents[1]))

import shutil  # noqa: E402
import tempfile  # noqa: E402

import gradio as gr  # noqa: E402
from gradio import processing_utils  # noqa: E402
from gradio.utils import get_upload_folder  # noqa: E402

from models.image_classifier import NAME  # noqa: E402  (light: no torch)
from shared import registry, serve, ui  # noqa: E402
from shared.device import gpu  # noqa: E402
from shared.errors import UserError  # noqa: E402

TOP_K = 5
THRESHOLD = 0.5  # under this top probability the answer is "not sure"
MAX_BATCH = 16

DESCRIPTION = """Upload a photo of a cat or a dog (or take one with your webcam, or paste one) and
the classifier names its breed, with its confidence in the five likeliest breeds. It is the first
project of fast.ai's *Practical Deep Learning* course, fine-tuned with timm from
`convnext_tiny.fb_in22k` on the Oxford-IIIT Pet data set. **Grad-CAM** colours the parts of the
photo that pushed the model towards its answer; **test-time augmentation** averages ten crops and
mirror images for a steadier answer. When the best guess is under the confidence threshold the
demo says it is not sure instead of forcing a breed: a photo of a car is not a pug."""


def file_path(image: dict | None) -> str | None:
    """The uploaded file of an image input, as it is (our events skip gradio's preprocessing).

    gr.Image would open every upload with PIL before the handler runs, and a file it cannot open
    (not an image, a decompression bomb) would fail there with a message meant for developers.
    Here `read_image` does every check itself and answers with a message meant for people.
    """
    if not image:
        return None
    url = image.get("url") or ""
    if url.startswith("data:"):  # inline bytes (rare): store them, undecoded
        return processing_utils.save_base64_to_cache(url, get_upload_folder())
    return image["path"]


def verdict(top: dict[str, float], threshold: float) -> str:
    """The answer in words: the top class, or "not sure" when its probability is too low."""
    best, p = next(iter(top.items()))
    if p >= threshold:
        return f"### {best} ({p:.0%})"
    return f"### 🤔 Not sure\nMy best guess is {best}, with only {p:.0%} confidence."


@gpu(duration=30)  # a ZeroGPU slot when the suite runs on one; a no-op elsewhere
def infer(pictures: list, tta: bool = False, cam: bool = False) -> list:
    """The model's work alone, on plain data: decoded pictures in, predictions out. On ZeroGPU
    this runs in a worker process, so it takes the model from the registry's cache there."""
    return registry.load(NAME).predict_batch(pictures, k=TOP_K, tta=tta, cam=cam)


@ui.errors
def predict(image: dict | None, tta: bool, threshold: float, cam: bool):
    """Name the breed of the pet in a photo: the likeliest labels with their confidences, the
    answer in words ("not sure" under the threshold) and a Grad-CAM heatmap if asked.

    Args:
        image: the photo of a cat or a dog (JPEG, PNG, WebP, GIF or BMP).
        tta: test-time augmentation: average ten crops and mirror images (slower, steadier).
        threshold: under this top confidence (0 to 1) the answer is "not sure".
        cam: also return a Grad-CAM heatmap of where the model looked.
    """
    path = file_path(image)
    if path is None:
        raise UserError("Upload a photo first (or take one with the webcam, or paste one).")
    model = registry.load(NAME)
    picture, note = model.read(path)
    if note:
        gr.Info(note)
    [pred] = infer([picture], tta, cam)
    return pred.top, verdict(pred.top, threshold), pred.heatmap


def refresh(image: dict | None, tta: bool, threshold: float, cam: bool):
    """Answer again when the image or an option changes; without an image, clear the answer."""
    if not image:
        return None, "", None
    return predict(image, tta, threshold, cam)


@ui.errors
def classify(images: list[dict | None]) -> tuple[list]:
    """Name the breed of the pet in a photo: the five likeliest labels with their confidences.

    Concurrent requests arrive here together and share one forward pass. An unreadable image
    fails its request alone: with others in the batch, its answer names the problem instead.

    Args:
        images: the photo of a cat or a dog (JPEG, PNG, WebP, GIF or BMP).
    """
    model = registry.load(NAME)
    pictures, problems = [], []
    for image in images:
        try:
            path = file_path(image)
            if path is None:
                raise UserError("No image given.")
            pictures.append(model.read(path)[0])
            problems.append(None)
        except UserError as e:
            problems.append(str(e))
    if len(images) == 1 and problems[0]:
        raise UserError(problems[0])
    preds = iter(infer(pictures))
    return ([f"Error: {problem}" if problem else next(preds).top for problem in problems],)


_examples_dir: Path | None = None


@ui.errors
def show_examples():
    """The example photos shipped in the model repo (loads the model: first use)."""
    global _examples_dir
    model = registry.load(NAME)
    if not model.examples:
        raise UserError("This model repo has no examples/ folder; upload your own photo.")
    if _examples_dir is None:  # gradio serves files from the temp dir, not from the HF cache
        _examples_dir = Path(tempfile.mkdtemp(prefix="pets-examples-"))
        for p in model.examples:
            shutil.copy(p, _examples_dir / p.name)
    files = [str(_examples_dir / p.name) for p in model.examples]
    return gr.Gallery(value=files, visible=True), gr.Button(visible=False)


def pick(evt: gr.SelectData) -> str:
    """The clicked example becomes the input image."""
    return evt.value["image"]["path"]


with gr.Blocks(title="Pet breed classifier") as demo:
    gr.Markdown("## 🐾 What breed is this pet?")
    gr.Markdown(DESCRIPTION)
    gr.Markdown(ui.model_info(NAME))
    with gr.Row(equal_height=False):
        with gr.Column():
            image = gr.Image(
                label="Photo",
                elem_id="pets-photo",
                type="filepath",
                sources=["upload", "webcam", "clipboard"],
                height=360,
            )
            with gr.Row():
                tta = gr.Checkbox(label="Test-time augmentation (10 views, slower)", value=False)
                cam = gr.Checkbox(label="Show Grad-CAM heatmap", value=True)
            threshold = gr.Slider(
                0.0,
                1.0,
                value=THRESHOLD,
                step=0.05,
                label="Confidence threshold: under it the answer is “not sure”",
            )
            button = gr.Button("Classify", variant="primary")
        with gr.Column():
            answer = gr.Markdown(elem_id="pets-answer")
            label = gr.Label(
                num_top_classes=TOP_K,
                label="Likeliest labels",
                show_heading=False,
                elem_id="pets-labels",
            )
            heatmap = gr.Image(
                label="Grad-CAM: where the model looked (red = most evidence for the top class)",
                type="pil",
                interactive=False,
                height=360,
                format="jpeg",
                elem_id="pets-cam",
            )
    examples_button = gr.Button("Show example photos from the model repo", size="sm")
    gallery = gr.Gallery(
        label="Examples from the model repo (click one)",
        columns=6,
        height=170,
        allow_preview=False,
        visible=False,
        elem_id="pets-examples",
    )
    api_button = gr.Button(visible=False)  # carries the batched API endpoint below

    # preprocess=False: the handlers get the uploaded file untouched (see file_path)
    inputs, outputs = [image, tta, threshold, cam], [label, answer, heatmap]
    busy = {"concurrency_limit": 1, "concurrency_id": "image-classifier", "preprocess": False}
    button.click(predict, inputs, outputs, api_name="predict", **busy)
    gr.on(
        [image.input, tta.input, cam.input, threshold.release],
        refresh,
        inputs,
        outputs,
        api_visibility="private",
        trigger_mode="always_last",
        **busy,
    )
    api_button.click(
        classify, image, label, api_name="classify", batch=True, max_batch_size=MAX_BATCH, **busy
    )
    examples_button.click(show_examples, None, [gallery, examples_button], api_visibility="private")
    gallery.select(pick, None, image, api_visibility="private").then(
        refresh, inputs, outputs, api_visibility="private", **busy
    )

if __name__ == "__main__":
    serve.launch(demo)
