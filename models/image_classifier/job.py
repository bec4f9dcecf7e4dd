"""Training a session's photos in the Space: the plan, one run at a time, live events, Stop.

`plan` picks the base (the GPU one or the small fast CPU one, from the registry), the image
size and the epochs, and estimates the time before anything starts. `run` is the run itself,
as a stream of plain, picklable events (it can cross ZeroGPU's process boundary): ("step",
{epoch, batch, batches, loss}) after every batch, ("epoch", record) after every epoch, then
("done", review) or ("stopped", why). The work happens in a worker thread that checks the
stop switch between layers (`train.interruptible`), so Stop, a lost client or the time cap
end it within about a second.

`turn(key)` is the line: one training at a time in this process, the others told their place;
a place is given up only once its run has really stopped. Torch-free at import.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.image_classifier import BASES
from models.image_classifier.workspace import MIN_CLASSES
from shared import device as devices
from shared import limits
from shared.errors import UserError

CPU_SIZE = 160  # px: a CPU trains about twice as fast as at 224 and small photos suffice
VALID_PCT = 0.2
# Training images a second at 224 px by (base, hardware): on a CPU measured with this recipe on
# a busy 2-core machine (bench/build_classifier.py: resnet18 at 160 px, 6.9 images/s); on a
# GPU guessed from the data loading (one thread decodes). The first epoch of each run measures
# this machine's own speed (`remember`), which the next estimate uses instead.
SPEED = {("cpu", "cpu"): 4.0, ("gpu", "cpu"): 1.0, ("cpu", "gpu"): 300.0, ("gpu", "gpu"): 200.0}
_measured: dict[tuple[str, str], float] = {}
_sizes: dict[str, int] = {}  # base source -> its pretrained image size


@dataclass
class Plan:
    """What a run will do: plain data (it crosses process boundaries)."""

    photos: str  # the workspace's photos folder (a folder per category)
    out: str  # where the model goes
    base: str  # "cpu" or "gpu": which of `BASES`
    size: int
    epochs: int  # after one frozen epoch
    bs: int
    n_photos: int
    seconds: float  # the estimate
    cap: float  # the time cap

    def describe(self) -> str:
        repo = base_name(self.base)
        minutes = f"{self.seconds / 60:.1f} min" if self.seconds >= 90 else f"{self.seconds:.0f} s"
        return (
            f"Fine-tunes **{repo}** at {self.size} px on {self.n_photos} photos: 1 epoch with "
            f"the body frozen, then {self.epochs} with every layer (fastai's `fine_tune`). "
            f"Expected time on this {hardware()}: **about {minutes}** (the cap is "
            f"{self.cap / 60:g} min)."
        )


def hardware() -> str:
    return "GPU" if devices.likely_gpu() else "CPU"


def plan(photos: Path, out: Path, counts: dict[str, int], base: str, epochs: int) -> Plan:
    """Check the data is enough and estimate the run, before anything starts."""
    if base not in BASES:
        raise UserError(f"Pick a model: {', '.join(BASES)}.")
    if len(counts) < MIN_CLASSES:
        raise UserError(
            f"Training needs photos of at least {MIN_CLASSES} categories; "
            f"this session has {len(counts)}. Search or upload some first."
        )
    few = [label for label, n in counts.items() if n < 2]
    if few:
        raise UserError(
            f"Each category needs at least 2 photos (one to learn from, one to check with): "
            f"{', '.join(few)}."
        )
    if not 1 <= epochs <= limits.BUILD_EPOCHS.value:
        raise UserError(f"Train for 1 to {limits.BUILD_EPOCHS} ({limits.BUILD_EPOCHS.reason}).")
    gpu = devices.likely_gpu()
    size = base_size(base) if gpu else min(base_size(base), CPU_SIZE)
    n = sum(counts.values())
    cap = (limits.BUILD_TRAIN_SECONDS_GPU if gpu else limits.BUILD_TRAIN_SECONDS_CPU).value
    key = (base, "gpu" if gpu else "cpu")
    # images a second at 224 px, scaled by pixels; tiny images stop gaining (per-batch costs)
    rate = (_measured.get(key) or SPEED[key]) * (224 / max(size, 96)) ** 2
    train_images = n * (1 - VALID_PCT) * (1 + epochs)
    seconds = 5 + train_images / rate + n * (2 + epochs) / (rate * 3)  # + validation, review
    return Plan(str(photos), str(out), base, size, epochs, 32 if gpu else 16, n, seconds, cap)


def base_name(base: str) -> str:
    """The base's repo as configured now (DEMO_MODEL_CLASSIFIER_BASE_*), for people."""
    from shared import registry

    name, default = BASES[base]
    with contextlib.suppress(UserError):
        repo, revision = registry.source(name)
        return repo if revision is not None else f"{default} (a local copy)"
    return default


def base_size(base: str) -> int:
    """The image size the base was pretrained at, from its config.json (fetched alone; the
    tests' tiny bases are 32 px), or timm's usual 224 when it cannot be read."""
    import json

    from shared import registry

    name, _ = BASES[base]
    with contextlib.suppress(Exception):
        repo, revision = registry.source(name)
        value = repo if revision is None else f"{repo}@{revision}"
        if value not in _sizes:  # once per source: estimates run on every slider move
            config = registry.resolve(value, ["config.json"]) / "config.json"
            cfg = json.loads(config.read_text())
            _sizes[value] = int(cfg.get("pretrained_cfg", cfg).get("input_size", [0, 0, 224])[-1])
        return _sizes[value]
    return 224


def run(plan: dict, stop: threading.Event | None = None) -> Iterator[tuple[str, Any]]:
    """One training run (`Plan` as a dict) as a stream of events; see the module docstring."""
    p = Plan(**plan)
    stop = stop or threading.Event()
    events: queue.Queue = queue.Queue()
    why: list[str] = []

    def cap() -> None:
        why.append(f"Stopped at the time cap ({p.cap / 60:g} min): train on fewer photos.")
        stop.set()

    def work() -> None:
        from models.image_classifier import review
        from models.image_classifier.config import TrainConfig
        from models.image_classifier.train import Stopped, train
        from shared import registry

        timer = threading.Timer(p.cap, cap)
        timer.start()
        try:
            base = registry.fetch(BASES[p.base][0])
            cfg = TrainConfig(
                data=Path(p.photos),
                labels="folder",
                arch=f"local-dir:{base}",
                pretrained=True,
                size=p.size,
                epochs=p.epochs,
                bs=p.bs,
                workers=0,
                valid_pct=VALID_PCT,
                out=Path(p.out + ".next"),  # the last good model stays until this one is done
                examples=6,
                onnx=False,  # the Space serves it with PyTorch, and has no export packages
            )
            train(
                cfg,
                lambda record: events.put(("epoch", record)),
                on_step=lambda info: events.put(("step", info)),
                stop=stop,
            )
            events.put(("phase", "Checking every photo with the new model…"))
            shutil.rmtree(p.out, ignore_errors=True)
            os.replace(p.out + ".next", p.out)
            events.put(("done", review.review(Path(p.photos), Path(p.out), VALID_PCT, stop)))
        except Stopped:
            events.put(("stopped", why[0] if why else "Stopped: this run's model was dropped."))
        except BaseException as e:  # handed to the reader, which raises it
            events.put(("error", e))
        finally:
            timer.cancel()
            shutil.rmtree(p.out + ".next", ignore_errors=True)

    worker = threading.Thread(target=work, daemon=True, name="build-classifier-train")
    worker.start()
    try:
        while True:
            event = events.get()
            if event[0] == "error":
                raise event[1]
            if event[0] == "epoch":
                remember(p, event[1])
            yield event
            if event[0] in ("done", "stopped"):
                return
    finally:
        stop.set()  # a no-op after the end; otherwise the run stops within about a second
        worker.join(timeout=30)


def remember(p: Plan, record: dict) -> None:
    """A finished epoch's measured speed, for the next estimate on this machine."""
    if record.get("images_per_s") and p.size:
        speed = record["images_per_s"] * (max(p.size, 96) / 224) ** 2  # at 224 px, as `SPEED`
        _measured[(p.base, "gpu" if devices.likely_gpu() else "cpu")] = speed


def gpu_seconds(plan: dict, *args: Any) -> int:
    """ZeroGPU time to ask for: the estimate with room, within the cap."""
    return int(min(limits.BUILD_TRAIN_SECONDS_GPU.value + 30, 30 + 2 * plan["seconds"]))


# --- stop switches and the line ----------------------------------------------------------------


class Switches:
    """The stop switch of each session's run (a search, a training), in the web server."""

    def __init__(self) -> None:
        self._switches: dict[str, threading.Event] = {}
        self._armed: set[str] = set()
        self._early: dict[str, float] = {}  # a stop that found nothing: when
        self._lock = threading.Lock()

    def arm(self, key: str) -> None:
        """A fresh switch for session `key`'s next run, from the click on: a Stop pressed while
        the run still waits in the queue stops it as soon as it starts."""
        event = threading.Event()
        with self._lock:
            # Train and Stop clicked in quick succession are two requests: the stop may come first
            if time.monotonic() - self._early.pop(key, -EARLY) < EARLY:
                event.set()
            self._switches[key] = event
            self._armed.add(key)

    @contextlib.contextmanager
    def hold(self, key: str, event: threading.Event | None = None) -> Iterator[threading.Event]:
        """The armed switch, `event` (an API request's own, set when its caller cancels) or a
        fresh one for session `key` while the block runs (a new run replaces it)."""
        with self._lock:
            armed = self._switches[key] if key in self._armed else None
            event = armed or event or threading.Event()
            self._armed.discard(key)
            self._switches[key] = event
        try:
            yield event
        finally:
            with self._lock:
                if self._switches.get(key) is event:
                    del self._switches[key]

    def get(self, key: str) -> threading.Event:
        """Session `key`'s switch; a fresh one where none is held (a ZeroGPU worker)."""
        return self._switches.get(key) or threading.Event()

    def stop(self, key: str | None) -> bool:
        """Stop session `key`'s run; False when it has none (it then stops a run armed within
        `EARLY` seconds after)."""
        if not key:
            return False
        with self._lock:
            event = self._switches.get(key)
            if event is None:
                now = time.monotonic()
                self._early = {k: t for k, t in self._early.items() if now - t < EARLY}
                self._early[key] = now
                return False
        event.set()
        return True


EARLY = 1.0  # s: a stop this much before its run's arming request still counts
trainings, searches = Switches(), Switches()
_line: list[list] = []  # [session, since when first in line], the running one first
_turn = threading.Condition()
STALE = limits.BUILD_TRAIN_SECONDS_CPU.value + 120  # a run first in line longer than this is gone


@contextlib.contextmanager
def turn(key: str, stop: threading.Event) -> Iterator[Iterator[int]]:
    """Wait in line for the one training slot: yields an iterator of this session's places
    (1 = next), which ends when it is its turn; leaving the block hands the turn on."""
    entry = [key, time.monotonic()]
    with _turn:
        _line.append(entry)

    def places() -> Iterator[int]:
        while True:
            with _turn:
                head = _line[0]
                if head is not entry and time.monotonic() - head[1] > STALE:
                    del _line[0]  # never handed back (a lost process): skip it
                place = next(i for i, e in enumerate(_line) if e is entry)
                if place == 0:
                    entry[1] = time.monotonic()  # the run's own start
                    return
            yield place
            if stop.is_set():
                raise UserError("Stopped while waiting in line: nothing was trained.")
            with _turn:
                _turn.wait(timeout=1.0)

    try:
        yield places()
    finally:
        with _turn:
            _line[:] = [e for e in _line if e is not entry]
            _turn.notify_all()


def waiting() -> int:
    """Sessions training or waiting to, now."""
    return len(_line)
