"""gradio pieces for the classifier Spaces (the pets one and the builder), no torch at import.

- the try-it panel `TryIt`: a photo in (upload, webcam or paste), the answer out (in words,
  the top-k bars, a Grad-CAM heatmap over the whole photo), "not sure" under a threshold, and
  a status line under its button where a failure stays. The image input skips gradio's
  preprocessing (`read_upload`): `read_image` checks every file and answers in words.
- the answer twice: `result` for API callers (raw labels, a not-sure flag: data), `shown` for
  people (labels as people write them, `pretty`, and a sentence).
- `options`: an API caller's threshold and switches, checked (shared.limits).
- `classifier(folder)`: a session's own model (the builder), loaded once per version.
- `caps_table()`: the builder's limits (shared.limits) as the page shows them.
- `login_button()`: "Sign in with Hugging Face" where signing in can work.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio import processing_utils
from gradio.utils import get_upload_folder

from shared import limits, ui
from shared.errors import UserError

TOP_K = 5
THRESHOLD = 0.5  # under this top probability the answer is "not sure"


# --- the answer --------------------------------------------------------------------------------


def read_upload(image: dict | None) -> str | None:
    """The uploaded file of an image input as it is (events run with preprocess=False)."""
    if not image:
        return None
    url = image.get("url") or ""
    if url.startswith("data:"):  # inline bytes (rare): store them, undecoded
        return processing_utils.save_base64_to_cache(url, get_upload_folder())
    return image["path"]


def photo(image: dict | None) -> str:
    """The uploaded file, or a `UserError` asking for one."""
    path = read_upload(image)
    if path is None:
        raise UserError("Upload a photo first (or take one with the webcam, or paste one).")
    return path


def flag(value: object, what: str) -> bool:
    """A switch as an API caller sent it: true or false, nothing else."""
    if not isinstance(value, bool):
        raise UserError(f"'{what}' must be true or false.")
    return value


def options(threshold: object, **switches: object) -> tuple[float, dict[str, bool]]:
    """The confidence threshold (a number from 0 to 1) and the on/off options, checked."""
    checked = limits.check_number(threshold, "confidence threshold", 0, 1)
    return checked, {name: flag(value, name) for name, value in switches.items()}


def pretty(label: str) -> str:
    """A class name as people write it: `american_bulldog` -> "American bulldog"; a name
    already written for people ("Abyssinian", "grizzly bear") keeps its words."""
    words = " ".join(str(label).replace("_", " ").split())
    return words[:1].upper() + words[1:] if words else str(label)


def _percent(p: float, threshold: float) -> str:
    """p as a percentage, precise enough not to read as the threshold itself."""
    text = f"{p:.0%}"
    return f"{p:.1%}" if text == f"{threshold:.0%}" else text


def result(top: dict[str, float], threshold: float, note: str | None = None) -> dict[str, Any]:
    """The answer as data for API callers: raw labels, best first."""
    best, p = next(iter(top.items()))
    sure = p >= threshold
    return {
        "label": best if sure else None,
        "not_sure": not sure,
        "confidences": [{"label": k, "confidence": v} for k, v in top.items()],
        "note": note,
    }


def shown(top: dict[str, float], threshold: float, note: str | None = None) -> tuple[dict, str]:
    """The answer as people read it: the top-k bars and a sentence, labels made readable."""
    names = {k: pretty(k) for k in top}
    if len(set(names.values())) < len(names):  # two raw labels read alike: keep them raw
        names = {k: k for k in top}
    best, p = next(iter(top.items()))
    if p >= threshold:
        words = f"### {names[best]} ({_percent(p, threshold)})"
    else:
        words = (
            f"### 🤔 Not sure\nMy best guess is {names[best]}, with only "
            f"{_percent(p, threshold)} confidence (the threshold is {threshold:.0%})."
        )
    if note:
        words += f"\n\n{note}"
    return {names[k]: v for k, v in top.items()}, words


def heatmap_file(image: Any) -> str | None:
    """The heatmap written once, to a file of its own: gradio would write it to a path named by
    its content, which two requests for the same photo rewrite while the other is read."""
    if image is None:
        return None
    path = ui.output_file("gradcam.jpg")
    image.convert("RGB").save(path, quality=90)
    return str(path)


def reword(last: dict | None, threshold: float) -> str:
    """The sentence again for a new threshold, from the last answer (no model needed)."""
    if not last:
        return gr.skip()
    threshold = limits.check_number(threshold, "confidence threshold", 0, 1)
    return shown(last["top"], threshold, last.get("note"))[1]


# --- the panel ---------------------------------------------------------------------------------


@dataclass
class TryIt:
    image: gr.Image
    button: gr.Button
    status: gr.Markdown
    threshold: gr.Slider
    tta: gr.Checkbox | None
    cam: gr.Checkbox
    answer: gr.Markdown
    labels: gr.Label
    heatmap: gr.Image
    last: gr.State  # {"top": raw label -> probability, "note"}: rewording needs no model

    @classmethod
    def build(cls, prefix: str, *, tta: bool = False, height: int = 300) -> TryIt:
        """The panel, its element ids starting with `prefix`; `tta`: offer test-time
        augmentation. The photo and its button come first: on a phone, above the fold."""
        with gr.Row(equal_height=False):
            with gr.Column():
                image = gr.Image(
                    label="Photo",
                    elem_id=f"{prefix}-photo",
                    type="filepath",
                    sources=["upload", "webcam", "clipboard"],
                    height=height,
                )
                button = gr.Button("Classify", variant="primary", elem_id=f"{prefix}-classify")
                status = ui.status(elem_id=f"{prefix}-status")
                threshold = gr.Slider(
                    0.0,
                    1.0,
                    value=THRESHOLD,
                    step=0.05,
                    label="Confidence threshold: under it the answer is “not sure”",
                    elem_id=f"{prefix}-threshold",
                )
                with gr.Row():
                    augment = (
                        gr.Checkbox(label="Test-time augmentation (10 views, slower)", value=False)
                        if tta
                        else None
                    )
                    cam = gr.Checkbox(label="Show Grad-CAM heatmap", value=True)
            with gr.Column():
                answer = gr.Markdown(elem_id=f"{prefix}-answer")
                labels = gr.Label(
                    num_top_classes=TOP_K,
                    label="Likeliest",
                    show_heading=False,
                    elem_id=f"{prefix}-labels",
                )
                heatmap = gr.Image(
                    label="Grad-CAM: where it looked (red)",
                    type="pil",
                    interactive=False,
                    height=height,
                    format="jpeg",
                    elem_id=f"{prefix}-cam",
                )
        last = gr.State(None)
        return cls(image, button, status, threshold, augment, cam, answer, labels, heatmap, last)

    @property
    def inputs(self) -> list:
        """The image, [test-time augmentation,] threshold, Grad-CAM: the API's order."""
        return [self.image, *([self.tta] if self.tta else []), self.threshold, self.cam]

    @property
    def outputs(self) -> list:
        return [self.labels, self.answer, self.heatmap, self.last, self.status]

    def listen(self, classify: Callable, before: Sequence = (), **kwargs: Any) -> None:
        """Page events: the button, a new photo and the switches run `classify(*before,
        *inputs) -> (labels, words, heatmap, last)` (a plain function: it runs stoppable, in a
        worker thread); the threshold rewords the last answer. Failures go to the status line,
        the stale answer cleared (`ui.reported`)."""
        clear = (True, True, True, True)
        run = ui.reported(ui.stoppable(classify), clear=clear)
        at = len(before)

        @functools.wraps(classify)
        def refresh(*args: Any) -> Any:  # a photo removed, or a switch with no photo: blank
            if not read_upload(args[at]):
                return None, "", None, None
            return classify(*args)

        inputs = [*before, *self.inputs]
        self.button.click(run, inputs, self.outputs, preprocess=False, **kwargs)
        switches = [self.image.input, self.cam.input, *([self.tta.input] if self.tta else [])]
        gr.on(
            switches,
            ui.reported(ui.stoppable(refresh), clear=clear),
            inputs,
            self.outputs,
            preprocess=False,
            trigger_mode="always_last",
            **kwargs,
        )
        # typing a number and pressing Enter changes it as much as dragging does
        self.threshold.change(
            ui.reported(reword, clear=(False,)),
            [self.last, self.threshold],
            [self.answer, self.status],
            queue=False,
            api_visibility="private",
        )


# --- the builder's own models and limits -------------------------------------------------------

_loaded: OrderedDict[tuple[str, float], Any] = OrderedDict()
_lock = threading.Lock()
KEEP = 4  # models kept loaded: sessions trying their new model at the same time


def classifier(folder: Path) -> Any:
    """The `Classifier` in `folder`, loaded once per version of its weights (a few kept).
    PyTorch serves it: the builder exports no model.onnx."""
    from models.image_classifier.predict import load

    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise UserError("Train a model first (step 3); then try it here.")
    key = (str(folder), weights.stat().st_mtime)
    with _lock:
        if key in _loaded:
            _loaded.move_to_end(key)
            return _loaded[key]
    model = load(folder, runtime="torch")
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


def caps_table() -> str:
    """The builder's limits (shared.limits) as a Markdown table, for its page."""
    from models.image_classifier.fetch import mb
    from models.image_classifier.workspace import MIN_CLASSES

    L = limits
    rows = [
        (L.BUILD_CLASSES, f"{MIN_CLASSES}–{L.BUILD_CLASSES.value} categories"),
        (L.BUILD_PHOTOS_PER_CLASS, None),
        (L.BUILD_PHOTO_BYTES, f"{mb(L.BUILD_PHOTO_BYTES.value)} per photo"),
        (L.BUILD_SESSION_BYTES, f"{mb(L.BUILD_SESSION_BYTES.value)} per session"),
        (L.BUILD_ZIP_FILES, None),
        (L.BUILD_SEARCH_SECONDS, None),
        (L.BUILD_FETCH_SECONDS, None),
        (L.BUILD_EPOCHS, None),
        (
            L.BUILD_TRAIN_SECONDS_CPU,
            f"{L.BUILD_TRAIN_SECONDS_CPU.value / 60:g} min of training (CPU)",
        ),
        (
            L.BUILD_TRAIN_SECONDS_GPU,
            f"{L.BUILD_TRAIN_SECONDS_GPU.value / 60:g} min of training (GPU)",
        ),
        (
            L.BUILD_SESSION_SECONDS,
            f"deleted {L.BUILD_SESSION_SECONDS.value / 60:g} min after last use",
        ),
        (L.BUILD_WORKSPACES, None),
    ]
    lines = ["| limit | why |", "|---|---|"]
    lines += [f"| {text or cap} | {cap.reason} |" for cap, text in rows]
    return "\n".join(lines)


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
