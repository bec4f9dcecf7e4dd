"""gradio pieces for the classifier Spaces (the pets one and the builder), no torch at import.

- the try-it panel: a photo in (upload, webcam or paste), the answer out (in words, the top-k
  bars, a Grad-CAM heatmap), "not sure" under a threshold: `TryIt.build()` lays it out and
  `answer(classifier, image, ...)` is the handler's work. The image input skips gradio's
  preprocessing (`read_upload`): `read_image` checks every file and answers in words.
- `shown(n)`: a handler's failure as a status line beside its control, never an overlay.
- `login_button()`: "Sign in with Hugging Face" where signing in can work.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio import processing_utils
from gradio.utils import get_upload_folder

from shared import ui
from shared.errors import UserError

TOP_K = 5
THRESHOLD = 0.5  # under this top probability the answer is "not sure"


def read_upload(image: dict | None) -> str | None:
    """The uploaded file of an image input as it is (events run with preprocess=False)."""
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


def answer(load: Callable[[], Any], image: dict | None, threshold: float, cam: bool):
    """(top-k confidences, the answer in words, the Grad-CAM overlay or None) for the model
    `load()` gives. A problem a person can fix (no photo, not an image, no model yet) is the
    answer, the old one cleared: no error covers the outputs."""
    try:
        return _answer(load, image, threshold, cam)
    except UserError as e:
        return None, f"⚠️ {e}", None


def _answer(load: Callable[[], Any], image: dict | None, threshold: float, cam: bool):
    path = read_upload(image)
    if path is None:
        raise UserError("Upload a photo first (or take one with the webcam, or paste one).")
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise UserError("The threshold is a number between 0 and 1.")
    classifier = load()
    picture, note = classifier.read(path)
    if note:
        gr.Info(note)
    pred = classifier.predict(picture, k=TOP_K, cam=cam)
    return pred.top, verdict(pred.top, threshold), pred.heatmap


@dataclass
class TryIt:
    image: gr.Image
    cam: gr.Checkbox
    threshold: gr.Slider
    button: gr.Button
    answer: gr.Markdown
    labels: gr.Label
    heatmap: gr.Image

    @classmethod
    def build(cls, prefix: str) -> TryIt:
        """The panel, its element ids starting with `prefix`."""
        with gr.Row(equal_height=False):
            with gr.Column():
                image = gr.Image(
                    label="Photo",
                    elem_id=f"{prefix}-photo",
                    type="filepath",
                    sources=["upload", "webcam", "clipboard"],
                    height=300,
                )
                cam = gr.Checkbox(label="Show Grad-CAM heatmap", value=True)
                threshold = gr.Slider(
                    0.0,
                    1.0,
                    value=THRESHOLD,
                    step=0.05,
                    label="Confidence threshold: under it the answer is “not sure”",
                )
                button = gr.Button("Classify", variant="primary", elem_id=f"{prefix}-classify")
            with gr.Column():
                answer_md = gr.Markdown(elem_id=f"{prefix}-answer")
                labels = gr.Label(
                    num_top_classes=TOP_K, label="Likeliest", elem_id=f"{prefix}-labels"
                )
                heatmap = gr.Image(
                    label="Grad-CAM: where the model looked (red = most evidence)",
                    type="pil",
                    interactive=False,
                    height=300,
                    format="jpeg",
                    elem_id=f"{prefix}-cam",
                )
        return cls(image, cam, threshold, button, answer_md, labels, heatmap)

    @property
    def inputs(self) -> list:
        return [self.image, self.threshold, self.cam]

    @property
    def outputs(self) -> list:
        return [self.labels, self.answer, self.heatmap]


_loaded: OrderedDict[tuple[str, float], Any] = OrderedDict()
_lock = threading.Lock()
KEEP = 4  # models kept loaded: sessions trying their new model at the same time


def classifier(folder: Path) -> Any:
    """The `Classifier` in `folder`, loaded once per version of its weights (a few kept)."""
    from models.image_classifier.predict import load

    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise UserError("Train a model first (step 3); then try it here.")
    key = (str(folder), weights.stat().st_mtime)
    with _lock:
        if key in _loaded:
            _loaded.move_to_end(key)
            return _loaded[key]
    model = load(folder)
    with _lock:
        _loaded[key] = model
        while len(_loaded) > KEEP:
            _loaded.popitem(last=False)
    return model


def forget(folder: Path) -> None:
    """Unload the models of `folder` (its session ended)."""
    with _lock:
        for key in [k for k in _loaded if k[0] == str(folder)]:
            del _loaded[key]


def shown(n: int):
    """Show a handler's failure in its first output, a status line beside the control, for as
    long as it matters (a toast fades): the other outputs are left as they are, so no input
    is ever covered. A bug is logged with a reference, which the person sees."""

    def wrap(fn):
        def message(e: Exception) -> tuple:
            # the log gets one line for a person's mistake, the traceback for a bug
            return (f"⚠️ {ui.to_gr_error(e, fn.__name__).message}", *[gr.skip()] * (n - 1))

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen(*args, **kwargs):
                try:
                    yield from fn(*args, **kwargs)
                except Exception as e:
                    yield message(e)

            return gen

        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                return message(e)

        return call

    return wrap


def login_button(elem_id: str) -> gr.Markdown | gr.LoginButton:
    """ "Sign in with Hugging Face" where it can work: on a Space with `hf_oauth`, or outside
    one as the machine's own account (gradio's local mock, which asks the Hub who that is when
    the app starts and stops the whole app if it cannot). Elsewhere, a line saying why not."""
    if os.environ.get("OAUTH_CLIENT_ID"):
        return gr.LoginButton(elem_id=elem_id)
    if not os.environ.get("SPACE_ID") and local_account():
        return gr.LoginButton(elem_id=elem_id)
    return gr.Markdown(
        "Signing in works when this demo runs as a Hugging Face Space with `hf_oauth: true`, "
        "or locally with a Hugging Face login (`hf auth login` or HF_TOKEN) and the Hub in "
        "reach.",
        elem_id=elem_id,
    )


def local_account() -> bool:
    """Whether gradio's local sign-in mock will work: a token, the Hub reachable, a user."""
    from huggingface_hub import get_token, whoami

    from shared import registry

    if registry.offline() or not get_token():
        return False
    try:
        return whoami().get("type") == "user"
    except Exception:  # offline, a bad token, an outage: no sign-in, the rest works
        return False
