"""Hostile input to the pets classifier's API (/predict, /classify): every refusal is a message
for a person, nothing is echoed, and the server keeps serving. Also: a cancelled batch stops."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from models.image_classifier import predict
from tests.factories import COLOURS, colour_photos, png_bomb, tiny_timm
from tests.hostile import NUMBERS, WRONG_TYPES
from tests.test_hostile_build_classifier import refused

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile-pets")
    photos = colour_photos(root / "photos", per_class=2, side=48)
    text = root / "notes.jpg"
    text.write_text("<script>alert(1)</script> not a photo")
    empty = root / "empty.png"
    empty.write_bytes(b"")
    long_name = root / (("x" * 200) + ".png")
    long_name.write_text("not a photo either")
    return {
        "photo": next(photos.rglob("*.png")),
        "text": text,
        "empty": empty,
        "bomb": png_bomb(root / "bomb.png", 20000, 20000),
        "long name": long_name,
    }


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_timm(tmp_path_factory.mktemp("pets-model"), sorted(COLOURS))


@pytest.fixture
def client(model, use_model, load_space, launch) -> Client:
    use_model("pets-classifier", str(model))
    return Client(launch(load_space("image_classifier").demo), verbose=False)


def serving(client: Client, files: dict[str, Path]) -> None:
    answer = client.predict(handle_file(str(files["photo"])), api_name="/classify")
    assert answer["label"] in COLOURS


@pytest.mark.parametrize("name", list(NUMBERS))
def test_predict_refuses_a_bad_threshold(client, files, name):
    message = refused(
        client, handle_file(str(files["photo"])), False, NUMBERS[name], True, api="/predict"
    )
    assert "confidence threshold" in message
    serving(client, files)


@pytest.mark.parametrize("value", ["abc", None, 1, [1], {"a": 1}], ids=repr)
def test_predict_refuses_switches_that_are_not_true_or_false(client, files, value):
    message = refused(client, handle_file(str(files["photo"])), value, 0.5, True, api="/predict")
    assert "must be true or false" in message
    serving(client, files)


@pytest.mark.parametrize("name", ["text", "empty", "bomb", "long name"])
@pytest.mark.parametrize("api", ["/predict", "/classify"])
def test_bad_files_are_refused_in_words(client, files, name, api):
    args = (False, 0.5, True) if api == "/predict" else ()
    message = refused(client, handle_file(str(files[name])), *args, api=api)
    assert "script" not in message and "x" * 70 not in message  # nothing echoed in full
    serving(client, files)


@pytest.mark.parametrize("value", [None, *WRONG_TYPES.values()], ids=repr)
@pytest.mark.parametrize("api", ["/predict", "/classify"])
def test_a_missing_or_wrong_photo_is_refused(client, files, value, api):
    args = (False, 0.5, True) if api == "/predict" else ()
    message = refused(client, value, *args, api=api)
    if value is None:
        assert "Upload a photo first" in message
    else:  # not a file: refused by gradio's own check, named (shared.serve.typed), or a
        # dict with no file in it, which reads as no photo
        assert "Photo must be a file" in message or "Upload a photo first" in message
    serving(client, files)


def test_cancelled_requests_stop_and_hold_their_slot_until_then(client, files, monkeypatch):
    """Three large batches (test-time augmentation: ten views each, one per chunk here, slowed
    down), each cancelled through gradio_client: one ran at a time, all stopped at once."""
    state = {"active": 0, "most": 0, "calls": 0, "last": 0.0}
    lock = threading.Lock()
    forward = predict.Classifier.probabilities

    def slow(self, x):
        with lock:
            state["active"] += 1
            state["most"] = max(state["most"], state["active"])
        try:
            time.sleep(0.3)
            return forward(self, x)
        finally:
            with lock:
                state["active"] -= 1
                state["calls"] += 1
                state["last"] = time.monotonic()

    monkeypatch.setattr(predict.Classifier, "probabilities", slow)
    monkeypatch.setattr(predict, "CHUNK", 1)  # ten views = ten chunks = 3 s a photo
    photo = handle_file(str(files["photo"]))
    jobs = []
    for _ in range(3):
        jobs.append(client.submit(photo, True, 0.5, False, api_name="/predict"))
        time.sleep(0.8)
        jobs[-1].cancel()
    cancelled = time.monotonic()
    time.sleep(1.5)
    assert state["most"] == 1  # never two at once: a cancelled job held its slot until stopped
    assert state["active"] == 0 and state["calls"] < 3 * 10
    assert state["last"] < cancelled + 1.0  # idle within a second of the last cancel
    monkeypatch.setattr(predict.Classifier, "probabilities", forward)
    serving(client, files)
