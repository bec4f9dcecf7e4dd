"""Every `@device.gpu` function of every Space through a process boundary, as ZeroGPU runs it.

On a ZeroGPU Space, `spaces.GPU` runs the decorated function in a worker process: its arguments
and its results (each yielded item, for a generator) travel pickled, and the worker has none of
the web server's objects. Here a stand-in for the `spaces` package does the same with a spawn
process pool, whose workers import the Space afresh: a function that received a model object,
returned something unpicklable, or relied on state of the server process fails. Each Space is
then driven through its API with gradio_client, so every GPU function runs with the arguments
gradio really passes, and the test checks that every one of them crossed the boundary.
"""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import pickle
import sys
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from shared import device
from shared import hub as hubio
from tests.factories import colour_photos, tiny_sd
from tests.tiny_plan import tiny_plan

ROOT = Path(__file__).resolve().parents[1]
CALLS: list[str] = []  # "module.qualname" of each call that crossed the boundary


def run_in_worker(module: str, qualname: str, payload: bytes) -> bytes:
    """In the worker: import the Space afresh, call the function as written, pickle the
    result (a generator's items, all of them)."""
    from shared import device
    from shared.suite import load_space

    if module not in sys.modules:
        sys.modules[module] = load_space(module.removeprefix("space_"))
    fn = next(
        f for f in device.GPU_FUNCTIONS if (f.__module__, f.__qualname__) == (module, qualname)
    )
    args, kwargs = pickle.loads(payload)
    result = fn(*args, **kwargs)
    return pickle.dumps(list(result) if inspect.isgenerator(result) else result)


def zero_gpu(pool: ProcessPoolExecutor) -> types.ModuleType:
    """A `spaces` module whose GPU decorator sends every call to `pool`, pickled both ways."""

    def GPU(duration=60):  # noqa: N802 (the real package's name)
        def decorate(fn):
            where = (fn.__module__, fn.__qualname__)

            def call(*args, **kwargs):
                CALLS.append(".".join(where))
                payload = pickle.dumps((args, kwargs))  # fails here as ZeroGPU's queue would
                return pickle.loads(pool.submit(run_in_worker, *where, payload).result())

            if inspect.isgeneratorfunction(fn):

                @functools.wraps(fn)
                def stream(*args, **kwargs):
                    yield from call(*args, **kwargs)

                return stream
            return functools.wraps(fn)(call)

        return decorate

    return types.SimpleNamespace(GPU=GPU, __name__="spaces")


@pytest.fixture(scope="module")
def published(tmp_path_factory, hub) -> dict[str, str]:
    """Tiny models of every Space pushed to the loopback Hub: {model name: "repo@commit"}."""
    from shared import publish

    root = tmp_path_factory.mktemp("zerogpu")
    plan = tiny_plan(root / "data")
    result, problems = publish.run("zerogpu", plan=plan, deploy=False, work=root / "work")
    assert not problems
    pins = {n: f"{m['repo']}@{m['revision']}" for n, m in result["models"].items()}
    sd = hubio.push(tiny_sd(root / "sd"), "zerogpu/tiny-sd")
    return {**pins, "stable-diffusion": f"zerogpu/tiny-sd@{sd}"}


@pytest.fixture
def pool(monkeypatch, published, use_model):
    for name, source in published.items():
        use_model(name, source)  # in the environment, so the workers see it too
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as executor:
        monkeypatch.setitem(sys.modules, "spaces", zero_gpu(executor))
        CALLS.clear()
        yield executor


def calls_for(space: str) -> list[str]:
    return [c for c in CALLS if c.startswith(f"space_{space}.")]


def gpu_functions(module: types.ModuleType) -> set[str]:
    return {
        f"{f.__module__}.{f.__qualname__}"
        for f in device.GPU_FUNCTIONS
        if f.__module__ == module.__name__ and f.__globals__ is vars(module)
    }


def test_every_gpu_function_of_every_space_crosses_a_process_boundary(
    pool, load_space, launch, tmp_path
):
    photo = next(colour_photos(tmp_path / "photos", per_class=1).rglob("*.png"))
    csv = tmp_path / "pairs.csv"
    csv.write_text("anchor,target,context,score\nupper valve,upper valves,F16,1\npump,sofa,A47,0\n")
    calls = {
        "image_classifier": [
            ((handle_file(str(photo)), True, 0.5, True), "/predict"),
            ((handle_file(str(photo)),), "/classify"),
        ],
        "patent_similarity": [
            (("upper valve", "upper valves", "F16"), "/score"),
            (("upper valve", "upper valves\nthin mirror", "F16"), "/rank"),
            ((handle_file(str(csv)),), "/score_csv"),
        ],
        "text_to_image": [
            (("a cat", "", 7.5, 0, 2, "DDIM", 64, 64, 1, 7, False), "/generate"),
            (("a cat", "", "1, 4", 0, 2, "Euler", 64, 64, 3, False), "/guidance_grid"),
        ],
    }
    found = {}
    for space in hubio.space_names():
        module = load_space(space)
        found[space] = gpu_functions(module)
        if not found[space]:
            continue
        assert space in calls, f"spaces/{space} has GPU functions: add its API calls here"
        client = Client(launch(module.demo), verbose=False)
        for args, api in calls[space]:
            client.predict(*args, api_name=api)  # an unpicklable argument or result fails it
        missing = found[space] - set(calls_for(space))
        assert not missing, f"{missing} never crossed the boundary: call them through the API"
    assert found["image_classifier"] == {"space_image_classifier.infer"}
    assert found["text_to_image"] == {"space_text_to_image._run"}
    assert len(found["patent_similarity"]) == 3


def test_the_boundary_refuses_what_does_not_pickle(pool):
    """The stand-in is a real boundary: an argument that cannot be pickled (as the pets
    Space's Classifier, with a lambda in its transforms, once was) fails the call."""

    @sys.modules["spaces"].GPU(duration=5)
    def infer(model, pictures):
        return model(pictures)

    with pytest.raises((pickle.PicklingError, AttributeError)):
        infer(lambda pictures: pictures, [])
