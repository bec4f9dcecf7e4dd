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
WRONG_ARGUMENTS = (
    "These arguments do not fit this endpoint: send a file with gradio_client's handle_file(), "
    "and each other value as the page's “Use via API” link shows."
)


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
    preprocess = demo.preprocess_data

    async def checked(block_fn: Any, *args: Any, **kwargs: Any) -> Any:
        # An API argument of the wrong shape (a string where a file goes, a number for a
        # table) fails in gradio before any handler: a message, not a traceback and none.
        try:
            return await preprocess(block_fn, *args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:
            log.info(
                "%s: arguments refused (%s)", block_fn.api_name or block_fn.name, type(e).__name__
            )
            raise gr.Error(WRONG_ARGUMENTS, print_exception=False) from None

    demo.preprocess_data = checked
    return demo


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
