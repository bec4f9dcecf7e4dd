"""UI pieces every Space shares: error handling and the model description."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from shared import registry

log = logging.getLogger("demos")

# Errors whose message is written for a person; anything else is a bug, logged in full.
USER_ERRORS = (registry.ModelError, ValueError)


def _to_gr_error(e: Exception) -> gr.Error:
    if isinstance(e, gr.Error):
        return e
    if isinstance(e, USER_ERRORS):
        return gr.Error(str(e))
    log.exception("Unexpected error in a demo handler")
    return gr.Error(
        f"Something went wrong ({type(e).__name__}). The server is still running; try again."
    )


def errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show failures of a Gradio handler as a clear `gr.Error`, never as a traceback."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                raise _to_gr_error(e) from e

        return gen

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise _to_gr_error(e) from e

    return call


def model_info(name: str) -> str:
    """Markdown naming where model `name` comes from, linked to its Hub page."""
    repo, revision = registry.source(name)
    spec = registry.MODELS[name]
    if revision is None:
        return f"**Model:** {spec.description} — local folder `{repo}`"
    return (
        f"**Model:** {spec.description} — [{repo}](https://huggingface.co/{repo}) "
        f"(revision `{revision}`; set `{registry.env_var(name)}` to use your own)"
    )
