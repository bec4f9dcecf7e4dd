"""A run as a stream of events, and the stop switches of the runs going on. Torch-free.

`stream(model, kind, settings, scales, stop=...)` runs `generate` or `guidance_grid` in a
worker thread and yields ("preview", Preview) events while it denoises, then ("done", Result)
or ("stopped", Stopped); closing the generator stops the run at its next step. Everything it
takes and yields is plain, picklable data: on a ZeroGPU Space it runs in a GPU worker process.

The web server's side, keyed by the gradio session: `follow(key, events)` registers the run's
stop switch, so that `stop(key)` (the Stop button) ends it, and remembers the speed a finished
run measured for the time estimate. `switch(key)` finds that switch from the GPU function (a
fresh one in a ZeroGPU worker process, which the registry cannot reach: there closing the
stream still stops the run).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from models.text_to_image.settings import Settings, remember

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
    stop = stop or threading.Event()
    events: queue.Queue = queue.Queue()
    every = PREVIEW_SECONDS if preview_seconds is None else preview_seconds
    options = {"preview": lambda p: events.put(("preview", p)), "stop": stop}

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

    threading.Thread(target=work, daemon=True, name=f"text-to-image-{kind}").start()
    try:
        while True:
            event = events.get()
            if event[0] == "error":
                raise event[1]
            yield event
            if event[0] != "preview":
                return
    finally:
        stop.set()  # no-op after a finished run; otherwise ends it at its next step


def gpu_seconds(kind: str, settings: dict, scales: str, *args: Any) -> int:
    """ZeroGPU time to reserve for a run: generous for the steps and the batch. (ZeroGPU calls
    it with the GPU function's arguments: kind, settings, scales, then any others.)"""
    batch = settings["images"] if kind == "generate" else len(scales.split(","))
    return int(min(300, 20 + 0.15 * settings["steps"] * batch))


# ----------------------------------------------------------------------------- stop switches

_stops: dict[str, threading.Event] = {}  # session -> the stop switch of its current run


def follow(key: str, events: Generator[Event, None, None]) -> Iterator[Event]:
    """The events of session `key`'s run, in the web server's process: while they flow,
    `stop(key)` ends the run; a finished run's measured speed refines `settings.estimate`.
    Closing this stream closes `events`, which stops the run."""
    own = threading.Event()
    _stops[key] = own
    try:
        with contextlib.closing(events):
            for event in events:
                if event[0] == "done":
                    remember(event[1].rate)
                yield event
    finally:
        if _stops.get(key) is own:
            del _stops[key]


def switch(key: str) -> threading.Event:
    """The stop switch of session `key`'s run; a fresh one where no run is registered (as in
    a ZeroGPU worker process)."""
    return _stops.get(key) or threading.Event()


def stop(key: str | None) -> bool:
    """Stop session `key`'s run between two steps; False when nothing is running."""
    event = _stops.get(key) if key else None
    if event is None:
        return False
    event.set()
    return True
