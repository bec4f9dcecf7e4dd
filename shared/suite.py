"""The suite: every Space under spaces/ rendered as one tab of one Gradio app.

Each Space's app.py is loaded by file path, as gradio's own all-demos app does, so that
`import spaces` always means Hugging Face's ZeroGPU package, never our spaces/ folder.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from huggingface_hub import metadata_load

from shared import registry

if TYPE_CHECKING:
    import gradio as gr

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "spaces"
log = logging.getLogger("demos")

HEADER = """# Practical Deep Learning — live demos
The applications of fast.ai's *Practical Deep Learning for Coders* course, as Hugging Face demos:
classify your photos, score patent phrases, get movie recommendations, and watch classifier-free
guidance steer Stable Diffusion. Every model loads on first use from the Hugging Face Hub, and each
tab is also a standalone Space you can duplicate, embed or call from Python with `gradio_client`.
"""


def find_spaces() -> list[str]:
    """Names of the Spaces under spaces/, in the suite's tab order: the order of the registry's
    families, then any Space that serves no registry model."""
    order = list(dict.fromkeys(s.space for s in registry.specs().values()))
    names = [p.parent.name for p in SPACES.glob("*/app.py")]
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def load_space(name: str) -> ModuleType:
    """Import spaces/<name>/app.py by path (it builds its `demo` at import)."""
    path = SPACES / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"space_{name}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def label(name: str) -> str:
    """The tab label: the Space's emoji and title from its README front matter."""
    readme = SPACES / name / "README.md"
    front = (metadata_load(readme) or {}) if readme.is_file() else {}
    title = front.get("title") or name.replace("_", " ").title()
    return f"{front.get('emoji', '')} {title}".strip()


def build_suite() -> gr.Blocks:
    """One Blocks app with a tab per Space; a Space that fails to build shows its error instead."""
    import gradio as gr  # here, not at import: deploying the suite needs only HEADER

    # Build the Spaces first: a gr.Blocks created inside another one renders itself there at
    # once, and render() would then show every component twice.
    built: dict[str, gr.Blocks | Exception] = {}
    for name in find_spaces():
        try:
            built[name] = load_space(name).demo
        except Exception as e:
            log.exception("Space %s failed to build", name)
            built[name] = e
    with gr.Blocks(title="Practical Deep Learning — live demos") as suite:
        gr.Markdown(HEADER)
        with gr.Tabs(overflow_behavior="wrap"):  # every demo one tap away on a phone
            for name, demo in built.items():
                with gr.Tab(label(name), id=name):
                    if isinstance(demo, Exception):
                        gr.Markdown(
                            f"### This demo could not be built\n`{type(demo).__name__}: {demo}`"
                            "\n\nThe other demos still work; the server log has the details."
                        )
                    else:
                        demo.render()
    return suite
