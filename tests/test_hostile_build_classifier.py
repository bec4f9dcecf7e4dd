"""Hostile input to the builder's API (/search_photos, /classify_photo): every refusal is a
message for a person, no work is done, nothing is echoed, and the server keeps serving. Also:
a cancelled search stops within a second."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from models.image_classifier import fetch, search
from models.image_classifier import workspace as wsp
from tests.factories import COLOURS, colour_photos, png_bomb
from tests.hostile import NUMBERS, TEXTS, WRONG_TYPES, for_a_person
from tests.search_stub import Stub


@pytest.fixture(scope="module")
def stub():
    s = Stub(COLOURS, per_query=16, side=48)
    yield s
    s.close()


@pytest.fixture(scope="module")
def client(stub, load_space, tmp_path_factory):
    from shared import serve

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEMO_IMAGE_SEARCH_ENDPOINT", stub.url)
        mp.setenv(fetch.ALLOW_LOOPBACK_ENV, "1")
        mp.setenv(wsp.ROOT_ENV, str(tmp_path_factory.mktemp("sessions")))
        demo = load_space("build_classifier").demo
        _, url, _ = serve.launch(
            demo, server_name="127.0.0.1", prevent_thread_lock=True, quiet=True
        )
        yield Client(url, verbose=False)
        demo.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile-build")
    text = root / "notes.jpg"
    text.write_text("<script>alert(1)</script> not a photo")
    return {
        "photo": next(colour_photos(root / "photos", per_class=1, side=48).rglob("*.png")),
        "text": text,
        "bomb": png_bomb(root / "bomb.png", 20000, 20000),
    }


def refused(client: Client, *args: object, api: str) -> str:
    """The message a refused call gets (a lone surrogate or a NaN, which gradio_client cannot
    send, goes as JSON escapes or NaN, as a script may send it)."""
    try:
        json.dumps(args, ensure_ascii=False, allow_nan=False).encode()
    except (UnicodeEncodeError, ValueError):
        return for_a_person(raw_call(client.src, api, args))
    with pytest.raises(AppError) as e:
        client.predict(*args, api_name=api)
    return for_a_person(str(e.value))


def raw_call(url: str, api: str, args: tuple) -> str:
    """Call `api` over gradio's HTTP API; the error message it answers with."""
    import httpx

    def sent(arg: object) -> object:  # a file: uploaded first, as the client does
        if not (isinstance(arg, dict) and "path" in arg):
            return arg
        with open(arg["path"], "rb") as f:
            r = httpx.post(f"{url.rstrip('/')}/gradio_api/upload", files={"files": f})
        return {"path": r.json()[0], "meta": {"_type": "gradio.FileData"}}

    args = tuple(map(sent, args))
    base = f"{url.rstrip('/')}/gradio_api/call{api}"
    body = json.dumps({"data": list(args)}).encode()  # ASCII: the surrogate as \ud800
    post = urllib.request.Request(base, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(post, timeout=30) as r:
        event = json.load(r)["event_id"]
    with urllib.request.urlopen(f"{base}/{event}", timeout=60) as r:
        stream = r.read().decode()
    assert "event: error" in stream, stream[:300]
    data = stream.split("event: error", 1)[1].split("data:", 1)[1].strip().splitlines()[0]
    return json.loads(data)["error"]


def serving(client: Client) -> None:
    text, photos = client.predict("red, blue", "", 1, api_name="/search_photos")
    assert "Kept:" in text and photos


@pytest.mark.parametrize("name", list(TEXTS))
def test_search_refuses_bad_category_text_without_searching(client, stub, name):
    before = len(stub.requests)
    message = refused(client, TEXTS[name], "", 5, api="/search_photos")
    assert len(stub.requests) == before  # no work done
    assert "script" not in message and "a" * 100 not in message


@pytest.mark.parametrize("value", list(WRONG_TYPES.values()) + [None], ids=repr)
def test_search_refuses_categories_that_are_not_text(client, value):
    refused(client, value, "", 5, api="/search_photos")


@pytest.mark.parametrize("name", ["huge", "surrogate"])
def test_search_refuses_a_bad_suffix(client, name):
    message = refused(client, "red, blue", TEXTS[name], 5, api="/search_photos")
    assert "words added to each search" in message


@pytest.mark.parametrize("name", list(NUMBERS))
def test_search_refuses_a_bad_number_of_photos(client, stub, name):
    before = len(stub.requests)
    message = refused(client, "red, blue", "", NUMBERS[name], api="/search_photos")
    assert "number of photos per category" in message and len(stub.requests) == before


@pytest.mark.parametrize("name", list(NUMBERS))
def test_classify_refuses_a_bad_threshold(client, files, name):
    message = refused(
        client, handle_file(str(files["photo"])), NUMBERS[name], False, api="/classify_photo"
    )
    assert "confidence threshold" in message


@pytest.mark.parametrize("name", ["text", "bomb"])
def test_classify_without_a_model_or_with_a_bad_file_says_so(client, files, name):
    message = refused(client, handle_file(str(files[name])), 0.5, False, api="/classify_photo")
    assert "Train a model first" in message or "image" in message


@pytest.mark.parametrize("value", ["abc", None, 1], ids=repr)
def test_classify_refuses_a_heatmap_switch_that_is_not_true_or_false(client, files, value):
    message = refused(client, handle_file(str(files["photo"])), 0.5, value, api="/classify_photo")
    assert "true or false" in message


def test_the_server_still_serves(client):
    serving(client)


def test_cancelled_searches_stop_within_a_second(client, stub, monkeypatch):
    """Three long searches (slow photo servers), each cancelled through gradio_client."""
    state = {"active": 0, "most": 0, "last": 0.0}
    lock = threading.Lock()
    collect = search.collect

    def watched(*args, **kwargs):
        with lock:
            state["active"] += 1
            state["most"] = max(state["most"], state["active"])
        try:
            for progress in collect(*args, **kwargs):
                state["last"] = time.monotonic()
                yield progress
        finally:
            with lock:
                state["active"] -= 1
                state["last"] = time.monotonic()

    monkeypatch.setattr(search, "collect", watched)
    monkeypatch.setattr(stub, "delay", 0.3)
    jobs = []
    for i in range(3):
        jobs.append(client.submit(f"red {i}, blue {i}", "", 100, api_name="/search_photos"))
        time.sleep(1.5)
        jobs[-1].cancel()
    cancelled = time.monotonic()
    time.sleep(2)
    assert state["most"] == 1 and state["active"] == 0  # each stopped before the next began
    assert state["last"] < cancelled + 1.0  # idle within a second of the last cancel
    monkeypatch.setattr(stub, "delay", 0.0)
    serving(client)


@pytest.mark.parametrize("value", [None, *WRONG_TYPES.values()], ids=repr)
def test_classify_refuses_a_missing_or_wrong_photo(client, value):
    message = refused(client, value, 0.5, False, api="/classify_photo")
    assert "must be a file" in message or "Upload a photo first" in message
