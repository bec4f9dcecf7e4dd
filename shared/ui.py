"""UI pieces every Space shares: failures shown to people, and the model description."""

from __future__ import annotations

import functools
import inspect
import logging
import secrets
from collections.abc import Callable
from typing import Any

import gradio as gr

from shared import registry
from shared.errors import UserError

log = logging.getLogger("demos")


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
        return e
    if isinstance(e, UserError):
        log.info("%s: %s", where, _one_line(str(e)))
        return gr.Error(str(e))
    ref = secrets.token_hex(4)
    log.error("Bug in %s [ref %s]", where, ref, exc_info=e)
    return gr.Error(
        f"Something went wrong on our side (reference {ref}). The server is still running; "
        "try again, and if it happens again, report the reference."
    )


def errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show failures of a Gradio handler as a clear `gr.Error`, never as a traceback."""
    where = fn.__name__
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
