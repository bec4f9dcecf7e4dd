"""Text to image under hostile input: every field of /generate and /guidance_grid fed the shared
corpus (tests/hostile.py) through gradio_client. A refusal is a message for a person, comes
before any work (no UNet call) and echoes little; what is accepted runs (clamped, with a
notice); the server answers afterwards. No local path in a PNG or in /config."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from PIL import Image

from models.text_to_image import NAME, png
from shared import registry
from shared.hub import push
from tests.factories import tiny_sd
from tests.hostile import NUMBERS, TEXTS, WRONG_TYPES, for_a_person

# A small valid request of each endpoint; each case changes one field.
GENERATE = {
    "prompt": "a cat",
    "negative": "",
    "guidance": 7.5,
    "rescale": 0,
    "steps": 1,
    "scheduler": "DDIM",
    "width": 64,
    "height": 64,
    "images": 1,
    "seed": 7,
    "randomize": False,
}
GRID = {k: v for k, v in GENERATE.items() if k not in ("guidance", "images")}
GRID = {"prompt": "a cat", "negative": "", "scales": "1, 4", **GRID}

# What each field accepts of the corpus (clamped with a notice, or as typed); all else is refused.
ACCEPTED_TEXT = set(TEXTS) - {"huge", "surrogate"}
ACCEPTED_NUMBER = {"negative", "huge", "number"}  # out of range: clamped, and the notice says so
ACCEPTED = {
    "prompt": ACCEPTED_TEXT,
    "negative": ACCEPTED_TEXT,
    "scheduler": set(),
    "scales": {"empty", "list"},  # the default scales; a list of numbers is scales too
    "seed": {"number"},
    "randomize": set(TEXTS) | set(NUMBERS) | set(WRONG_TYPES),  # anything: truthy or not
}


def cases(endpoint: str, fields: dict) -> Iterator:
    for field in fields:
        if field == "randomize":
            continue  # a flag: every value means random or not
        corpus = TEXTS if field in ("prompt", "negative", "scheduler", "scales") else NUMBERS
        for name in [*corpus, *WRONG_TYPES]:
            value = corpus.get(name, WRONG_TYPES.get(name))
            yield pytest.param(endpoint, field, name, value, id=f"{endpoint}-{field}-{name}")


CASES = [*cases("/generate", GENERATE), *cases("/guidance_grid", GRID)]


class Calls:
    """UNet calls in the server (it runs in this process)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, module, args) -> None:
        self.count += 1


@pytest.fixture(scope="module")
def served(hub, load_space, tmp_path_factory) -> Iterator[tuple[Client, Calls, str]]:
    from shared import serve

    folder = tiny_sd(tmp_path_factory.mktemp("tiny-sd"))
    repo = f"tests/hostile-sd-{time.time_ns()}"
    push(folder, repo)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(registry.env_var(NAME), repo)
        registry.unload(NAME)
        calls = Calls()
        hook = registry.load(NAME).pipe.unet.register_forward_pre_hook(calls)
        demo = load_space("text_to_image").demo
        _, url, _ = serve.launch(
            demo, server_name="127.0.0.1", prevent_thread_lock=True, quiet=True
        )
        try:
            yield Client(url, verbose=False), calls, url
        finally:
            demo.close()
            hook.remove()
            registry.unload(NAME)


@pytest.mark.parametrize(("endpoint", "field", "name", "value"), CASES)
def test_every_field_refuses_clearly_or_runs(served, endpoint, field, name, value):
    client, calls, _ = served
    args = dict(GENERATE if endpoint == "/generate" else GRID)
    args[field] = value
    before = calls.count
    accepted = name in ACCEPTED.get(field, ACCEPTED_NUMBER)
    try:
        out = client.predict(*args.values(), api_name=endpoint)
    except Exception as e:
        message = for_a_person(str(e))
        assert not accepted, f"refused: {message}"
        assert calls.count == before, "work was done before the refusal"
        assert "a" * 101 not in message and "🐱" * 61 not in message  # a short excerpt only
        return
    assert accepted, f"{field}={name} ran: {out[2]}"
    assert calls.count > before and for_a_person(out[2])
    if isinstance(value, int | float) and not math.isfinite(float(value)):
        pytest.fail("a non-finite number ran")


def test_a_cpu_request_over_its_budget_is_refused_before_it_runs(served):
    client, calls, _ = served
    args = {**GENERATE, "steps": 100, "width": 768, "height": 768, "images": 4}
    before = calls.count
    with pytest.raises(Exception) as refused:
        client.predict(*args.values(), api_name="/generate")
    message = for_a_person(str(refused.value))
    assert "Too much for a CPU" in message and "at most 5 steps at this size" in message
    grid = {**GRID, "scales": "1, 2, 3, 4, 5, 6", "steps": 30, "width": 512, "height": 512}
    with pytest.raises(Exception, match="Too much for a CPU"):
        client.predict(*grid.values(), api_name="/guidance_grid")
    assert calls.count == before


def test_no_local_path_in_config_or_pngs(served, tmp_path, load_space, launch, use_model):
    _, _, url = served
    config = httpx.get(f"{url}/config").text
    assert str(registry.fetch(NAME)) not in config and "/tmp/" not in config
    # served from a local folder: neither the page nor the PNG names it
    folder = tiny_sd(tmp_path / "local-sd")
    use_model(NAME, str(folder))
    local = launch(load_space("text_to_image").demo)
    assert str(folder) not in httpx.get(f"{local}/config").text
    _, gallery, status, _ = Client(local, verbose=False).predict(
        *GENERATE.values(), api_name="/generate"
    )
    text = Image.open(gallery[0]["image"]).text
    assert str(tmp_path) not in json.dumps(text) and str(tmp_path) not in status
    assert "model" not in png.read_settings(gallery[0]["image"])


def test_the_server_still_answers(served):
    client, _, _ = served
    _, gallery, status, seed = client.predict(*GENERATE.values(), api_name="/generate")
    assert seed == 7 and len(gallery) == 1 and Path(gallery[0]["image"]).is_file()
