"""Serving a demo as a public Space: one set of launch settings for every Space and the suite.

The queue and its caps, the upload size, how many sessions stay in memory, how long result
files live, the logs and the page's CSS: all from `shared.limits`, so a Space's `app.py` ends
with `serve.launch(demo)` and nothing else.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr
from gradio import route_utils
from gradio.utils import LRUCache

from shared import limits, ui

log = logging.getLogger("demos")
CONCURRENCY = 4  # requests at a time per event; GPU-heavy events set their own limit of 1


def configure_logging() -> None:
    """One line per record, with the time: what a person did wrong is one line, a bug a
    traceback (shared.ui)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for name in ("httpx", "httpx2"):  # one line per HTTP call otherwise
        logging.getLogger(name).setLevel(logging.WARNING)


def prepare(demo: gr.Blocks) -> gr.Blocks:
    """Enable the queue with its caps: `limits.QUEUE` in all, `limits.QUEUE_PER_DEMO` for each
    concurrency group (a flood of slow requests must not starve the fast demos)."""
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=limits.QUEUE.value)
    # result files older than TEMP_AGE are swept (our own outputs too: see ui.output_file)
    demo.delete_cache = (limits.TEMP_SWEEP.value, limits.TEMP_AGE.value)
    queue = demo._queue
    if getattr(queue, "_demos_capped", False):
        return demo
    # What gradio keeps per session beyond its state (message queues, per-event analytics)
    # would otherwise grow for thousands of sessions: keep it to about SESSIONS' worth.
    queue.pending_messages_per_session = LRUCache(2 * limits.SESSIONS.value)
    queue.ANALYTICS_MAX_EVENTS = 10 * limits.SESSIONS.value
    push = queue.push

    async def capped(body: Any, request: Any, username: Any) -> Any:
        if body.fn_index is not None:
            fn = route_utils.get_fn(queue.blocks, None, body)
            waiting = queue.event_queue_per_concurrency_id.get(fn.concurrency_id)
            if waiting is not None and len(waiting.queue) >= limits.QUEUE_PER_DEMO.value:
                log.info("busy: %s has %d waiting", fn.api_name or fn.name, len(waiting.queue))
                return (
                    False,
                    f"This demo is busy: {len(waiting.queue)} requests are waiting for it. "
                    "Please try again in a minute.",
                    "queue_full",
                )
        return await push(body, request, username)

    queue.push = capped
    queue._demos_capped = True
    typed(demo)
    return demo


def typed(demo: gr.Blocks) -> None:
    """An API caller's input of the wrong shape for a file component (a list where a photo
    goes) fails gradio's own check before any handler runs, with no message at all: name
    the input instead (one log line, no traceback)."""
    preprocess = demo.preprocess_data

    async def checked(block_fn: Any, inputs: list, *args: Any, **kwargs: Any) -> Any:
        try:
            return await preprocess(block_fn, inputs, *args, **kwargs)
        except ValueError as e:  # pydantic's ValidationError (not imported: gradio's own dep)
            if not type(e).__module__.startswith("pydantic"):
                raise
            names = [getattr(b, "label", None) or type(b).__name__ for b in block_fn.inputs]
            wrong = [n for b, n in zip(block_fn.inputs, names, strict=True) if b.data_model]
            log.info("wrong input type for %s", block_fn.api_name or block_fn.name)
            raise gr.Error(
                f"An input is not of the type this endpoint takes: {', '.join(wrong)} must be "
                "a file (with gradio_client: handle_file(path)).",
                print_exception=False,
            ) from None

    demo.preprocess_data = checked


def options(**overrides: Any) -> dict[str, Any]:
    """The keyword arguments of `Blocks.launch` every demo uses."""
    return {
        "css": ui.CSS,
        "max_file_size": limits.UPLOAD_BYTES.value,
        "state_session_capacity": limits.SESSIONS.value,
        "mcp_server": True,  # every documented API endpoint is also an MCP tool
        **overrides,
    }


def launch(demo: gr.Blocks, **overrides: Any) -> Any:
    """Serve `demo` with the settings above (GRADIO_SERVER_NAME/PORT are read by gradio);
    its API is also an MCP server at /gradio_api/mcp/."""
    configure_logging()
    prepare(demo)
    return demo.launch(**options(**overrides))
