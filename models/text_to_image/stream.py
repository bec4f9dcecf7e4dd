"""A run as a stream of events. Torch-free.

`stream(model, kind, settings, scales, stop=...)` runs `generate` or `guidance_grid` in a
worker thread and yields ("preview", Preview) events while it denoises, then ("done", Result)
or ("stopped", Stopped); setting `stop` (the request's cancel switch, `shared.cancel.switch()`)
or closing the generator stops the run within a step. Everything it takes and yields is plain,
picklable data: on a ZeroGPU Space it runs in a GPU worker process, where closing the stream
(the web server's side was cancelled) is what stops it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from models.text_to_image.settings import Settings

if TYPE_CHECKING:
    from PIL import Image

PREVIEW_SECONDS = 0.5  # at most two previews a second: each one travels to the browser
Event = tuple[str, Any]  # ("preview", Preview) | ("done", Result) | ("stopped", Stopped)


class Stopped(Exception):
    """A run was stopped between two denoising steps."""

    def __init__(self, step: int, steps: int):
        super().__init__(step, steps)  # picklable: ZeroGPU sends it back from its worker
        self.step, self.steps = step, steps

    def __str__(self) -> str:
        return f"Stopped at step {self.step} of {self.steps}."


@dataclass
class Preview:
    step: int
    steps: int
    image: Image.Image
    seconds: float


@dataclass
class Result:
    images: list[Image.Image]  # PNG-ready: settings in .info; withheld ones are notices
    settings: Settings  # as run (checked, seed resolved); image i used seed + i
    notices: list[str]
    flagged: list[bool]
    seconds: float
    rate: float  # seconds per UNet sample-step per latent pixel, for time estimates
    grid: Image.Image | None = None  # the labelled guidance grid
    scales: list[float] = field(default_factory=list)


# ----------------------------------------------------------------------------- the run


def stream(
    model: Any,
    kind: str,
    settings: Settings | dict,
    scales: Sequence[float] | str = "",
    *,
    stop: threading.Event | None = None,
    preview_seconds: float | None = None,
) -> Iterator[Event]:
    """One run of `model` (a `TextToImage`), `kind` "generate" or "grid", as a stream of
    events. The run happens in a worker thread, so previews arrive while it denoises; closing
    the stream (Stop, a lost client) or setting `stop` ends it between two steps. A failure of
    the run (a `UserError` for bad settings) is raised here."""
    if kind not in {"generate", "grid"}:
        raise ValueError(f"kind must be 'generate' or 'grid', not {kind!r}")
    closed = threading.Event()  # set when the stream ends: a run still going stops
    events: queue.Queue = queue.Queue()
    every = PREVIEW_SECONDS if preview_seconds is None else preview_seconds
    options = {"preview": lambda p: events.put(("preview", p)), "stop": _Either(closed, stop)}

    def work() -> None:
        try:
            s = Settings(**settings) if isinstance(settings, dict) else settings
            if kind == "grid":
                result = model.guidance_grid(s, scales, **options, preview_seconds=every)
            else:
                result = model.generate(s, **options, preview_seconds=every)
            events.put(("done", result))
        except Stopped as e:
            events.put(("stopped", e))
        except BaseException as e:  # handed to the reader, which raises it
            events.put(("error", e))

    thread = threading.Thread(target=work, daemon=True, name=f"text-to-image-{kind}")
    thread.start()
    try:
        while True:
            event = events.get()
            if event[0] == "error":
                raise event[1]
            yield event
            if event[0] != "preview":
                return
    finally:
        closed.set()  # no-op after a finished run; otherwise ends it within a step
        thread.join()  # and only then is the stream closed: the caller's slot frees after it


class _Either:
    """A stop switch set when either of two is (the caller's switch is never set here)."""

    def __init__(self, own: threading.Event, other: threading.Event | None):
        self.own, self.other = own, other

    def is_set(self) -> bool:
        return self.own.is_set() or (self.other is not None and self.other.is_set())


def gpu_seconds(kind: str, settings: dict, scales: str, *args: Any) -> int:
    """ZeroGPU time to reserve for a run: generous for the steps and the batch. (ZeroGPU calls
    it with the GPU function's arguments: kind, settings, scales, then any others; the settings
    were checked, but numbers may still arrive as text such as "2".)"""
    batch = float(settings["images"]) if kind == "generate" else len(str(scales).split(","))
    return int(min(300, 20 + 0.15 * min(float(settings["steps"]), 100) * min(batch, 6)))
