"""Stopping long work when its request is cancelled (the Stop button, a closed page, a client's
`job.cancel()`), so that a cancelled job frees its slot only once it has really stopped.

The web layer (`shared.ui.stoppable`) runs each long handler's work in a worker thread with a
stop switch in a context variable; the work calls `check()` at least once a second (between
batches, chunks, steps, epochs), which raises `Cancelled` once the switch is set. Outside a
request `check()` never raises, so the same code runs from the command line. No gradio here:
model families call it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

from shared.errors import UserError

T = TypeVar("T")
_switch: ContextVar[threading.Event | None] = ContextVar("demos_stop_switch", default=None)


class Cancelled(UserError):
    """The request was cancelled and its work stopped early (not a bug)."""

    def __init__(self, message: str = "Stopped before the end.") -> None:
        super().__init__(message)


def check() -> None:
    """Raise `Cancelled` if the current request was cancelled."""
    switch = _switch.get()
    if switch is not None and switch.is_set():
        raise Cancelled


def switch() -> threading.Event:
    """The current request's stop switch (for code that polls an Event itself, such as a
    diffusers step callback); a fresh, never-set one outside a request."""
    return _switch.get() or threading.Event()


def run_with(switch: threading.Event, work: Callable[[], T]) -> T:
    """Run `work` with `switch` as the current stop switch (the web layer calls this in the
    worker thread that does a request's work)."""
    token = _switch.set(switch)
    try:
        return work()
    finally:
        _switch.reset(token)
