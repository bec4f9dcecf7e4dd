"""UI pieces every Space shares: failures shown to people (a toast for API callers, a status
line beside the control for the page), stoppable long work, the served model's description,
and the page's CSS."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from shared import cancel, registry, runtime
from shared.errors import UserError

log = logging.getLogger("demos")

# Phones first: nothing wider than the screen, tables that wrap between words, a status line
# that stands out.
CSS = """
.demo-status p { margin: 0.25rem 0; }
.demo-status:has(p) { border-left: 4px solid var(--color-accent); padding-left: 0.6rem; }
table th, table th * { word-break: normal !important; overflow-wrap: normal !important; }
@media (max-width: 600px) {
  .gradio-container { padding-left: 6px !important; padding-right: 6px !important; }
  .demo-wide-only { display: none !important; }
  .demo-gallery .grid-container { grid-template-columns: repeat(3, minmax(0, 1fr)) !important; }
}
"""


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_gr_error(e: Exception, where: str = "") -> gr.Error:
    """A failure as the `gr.Error` a person sees.

    A `UserError` (or a `gr.Error`) is shown as it is and logged in one line. Anything else is
    a bug: its traceback is logged once with a short reference, which the person sees instead
    of a library's message."""
    if isinstance(e, gr.Error):
        log.info("%s: %s", where, _one_line(e.message))
        e.print_exception = False  # logged above, in one line
        return e
    if isinstance(e, UserError):
        log.info("%s: %s", where, _one_line(str(e)))
        return gr.Error(str(e), print_exception=False)
    ref = secrets.token_hex(4)
    log.error("Bug in %s [ref %s]", where, ref, exc_info=e)
    return gr.Error(
        f"Something went wrong on our side (reference {ref}). The server is still running; "
        "try again, and if it happens again, report the reference.",
        print_exception=False,
    )


def errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show failures of a Gradio handler (function or generator, sync or async) as a clear
    `gr.Error`, never as a traceback."""
    where = fn.__name__
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def agen(*args: Any, **kwargs: Any) -> Any:
            try:
                async for item in fn(*args, **kwargs):
                    yield item
            except Exception as e:
                raise to_gr_error(e, where) from None

        return agen
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def coro(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except Exception as e:
                raise to_gr_error(e, where) from None

        return coro
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                raise to_gr_error(e, where) from None

        return gen

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise to_gr_error(e, where) from None

    return call


async def _until_stopped(work: Callable[[], Any], switch: threading.Event) -> Any:
    """Run `work` in a worker thread. If the request is cancelled meanwhile, set its stop
    switch and wait for the work to notice (`cancel.check()`, at least once a second) before
    letting the cancellation through: the event's slot is freed only when the work stopped."""
    task = asyncio.ensure_future(asyncio.to_thread(cancel.run_with, switch, work))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        switch.set()
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the work's own `Cancelled` is expected here
        raise


def _step(gen: Any) -> tuple[bool, Any]:
    try:
        return False, next(gen)
    except StopIteration:
        return True, None


def stoppable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Make a long handler (a sync function or generator) stop its work when its request is
    cancelled, and hold its concurrency slot until it has stopped. The work calls
    `shared.cancel.check()` between steps. Put `@errors` above it."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        async def agen(*args: Any, **kwargs: Any) -> Any:
            switch = threading.Event()
            gen = fn(*args, **kwargs)
            try:
                while True:
                    try:
                        done, item = await _until_stopped(functools.partial(_step, gen), switch)
                    except cancel.Cancelled:
                        return  # stopped from elsewhere (its own Stop switch)
                    if done:
                        return
                    yield item
            finally:
                switch.set()
                gen.close()  # suspended at a yield (or finished): its cleanup runs now

        return agen

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        switch = threading.Event()
        return await _until_stopped(functools.partial(fn, *args, **kwargs), switch)

    return call


def model_info(name: str) -> str:
    """Markdown naming where model `name` comes from, linked to its Hub page."""
    spec = registry.spec(name)
    try:
        repo, revision = registry.source(name)
    except UserError as e:
        return f"**Model:** {spec.description} — ⚠️ {e}"
    if revision is None:
        return f"**Model:** {spec.description} — a local folder"
    return (
        f"**Model:** {spec.description} — [{repo}](https://huggingface.co/{repo}) "
        f"(revision `{revision}`; set `{registry.env_var(name)}` to use your own)"
    )


def output_file(name: str) -> Path:
    """A path for a result file (a scored CSV, a PNG) inside gradio's own cache folder: gradio
    then serves it without copying it (each output is written once) and its `delete_cache`
    sweep removes it with the rest (shared.serve)."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()) / f"demos-{secrets.token_hex(8)}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


# --- the page's error state: a status line, never an overlay over the inputs -----------------


def problem(e: Exception, where: str = "") -> str:
    """The status line for a failure: the person's message, or a bug's reference (logged)."""
    if isinstance(e, cancel.Cancelled):
        return f"⏹ {e}"
    error = to_gr_error(e, where)
    return f"⚠️ {error.message}"


def status(**kwargs: Any) -> gr.Markdown:
    """The status line of a control: where its failure stays visible until the next action."""
    return gr.Markdown(elem_classes=["demo-status"], **kwargs)


def reported(fn: Callable[..., Any], clear: Sequence[bool]) -> Callable[..., Any]:
    """`fn` for a page event whose last output is a `status` line.

    On success: `fn`'s outputs and an empty status. On a failure: the reason in the status,
    the outputs marked True in `clear` emptied (stale results must not stand beside an error)
    and the others untouched (inputs keep what the person typed). Nothing is raised, so gradio
    draws no error overlay over any component. API endpoints keep raising (`errors`)."""
    where = fn.__name__
    keep = [None if c else gr.skip() for c in clear]

    def fail(e: Exception) -> tuple:
        return (*keep, problem(e, where))

    def ok(out: Any) -> tuple:
        return (*(out if isinstance(out, tuple) else (out,)), "")

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def agen(*args: Any, **kwargs: Any) -> Any:
            try:
                async for out in fn(*args, **kwargs):
                    yield ok(out)
            except Exception as e:
                yield fail(e)

        return agen
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def coro(*args: Any, **kwargs: Any) -> Any:
            try:
                return ok(await fn(*args, **kwargs))
            except Exception as e:
                return fail(e)

        return coro
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args: Any, **kwargs: Any) -> Any:
            try:
                for out in fn(*args, **kwargs):
                    yield ok(out)
            except Exception as e:
                yield fail(e)

        return gen

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return ok(fn(*args, **kwargs))
        except Exception as e:
            return fail(e)

    return call


# --- the served model's own story ------------------------------------------------------------

CARD_FILES = ["README.md", "metrics.json", "config.json", "model_index.json"]


@functools.lru_cache(maxsize=32)
def _describe(name: str, source: tuple[str, str | None]) -> str:
    spec = registry.spec(name)
    repo, revision = source
    value = repo if revision is None else f"{repo}@{revision}"
    try:
        folder = registry.resolve(value, CARD_FILES, name=name)
    except registry.RepoNotFound as e:
        if spec.build is not None and registry.is_default(name):
            return (
                f"**Model:** {spec.description}. Not published yet: it builds itself here "
                "on first use (a few seconds) and is reused afterwards."
            )
        return f"⚠️ {e}"
    except UserError as e:  # offline and not cached, the Hub down: the catalogue's words
        return f"**Model:** {spec.description} ({e})"
    commit = folder.name if folder.parent.name == "snapshots" else revision
    return card_text(spec.description, repo if revision else None, commit, folder)


def card_text(fallback: str, repo: str | None, commit: str | None, folder: Path) -> str:
    """Markdown from a model folder's card and metrics: its title, base, data, licence and
    measured metrics, linked to the exact commit; `fallback` where the card says nothing."""
    meta: dict[str, Any] = {}
    if (folder / "README.md").is_file():
        from huggingface_hub import ModelCard

        meta = ModelCard.load(folder / "README.md").data.to_dict()
    index = meta.get("model-index") or [{}]
    title = index[0].get("name") or fallback
    parts = [f"**Model:** {title}"]
    if repo:
        at = f"tree/{commit}" if commit else ""
        short = f" @ `{commit[:7]}`" if commit else ""
        parts.append(f"[{repo}](https://huggingface.co/{repo}/{at}){short}")
    else:
        parts.append("a local folder")
    if base := meta.get("base_model"):
        base = base[0] if isinstance(base, list) else base
        parts.append(f"fine-tuned from [{base}](https://huggingface.co/{base})")
    if data := meta.get("datasets"):
        parts.append("data: " + ", ".join(data if isinstance(data, list) else [data]))
    if licence := meta.get("license_name") or meta.get("license"):
        parts.append(f"licence: {licence}")
    measured = _metrics(meta, folder)
    if measured:
        parts.append("measured: " + ", ".join(f"{k} {v:.3g}" for k, v in measured.items()))
    if fast := runtime.summary(folder):  # which runtime serves it here (the CPU fast path)
        parts.append(fast)
    return " · ".join(parts)


def _metrics(meta: dict[str, Any], folder: Path) -> dict[str, float]:
    """The card's model-index metrics, else the numbers at the top of metrics.json."""
    out: dict[str, float] = {}
    for entry in meta.get("model-index") or []:
        for result in entry.get("results", []):
            for m in result.get("metrics", []):
                if isinstance(m.get("value"), int | float):
                    out[m.get("name") or m.get("type")] = float(m["value"])
    if not out and (folder / "metrics.json").is_file():
        data = json.loads((folder / "metrics.json").read_text())
        out = {k: float(v) for k, v in data.items() if isinstance(v, int | float)}
        out = dict(list(out.items())[:4])
    return out


def describe(name: str) -> str:
    """Markdown describing the model `name` the demo serves now, from its own card (fetched
    alone: a few kB, the weights load on first use); the catalogue text when it has none."""
    try:
        source = registry.source(name)
    except UserError as e:
        return f"⚠️ {e}"
    return _describe(name, source)
