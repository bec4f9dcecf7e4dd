"""The suite app: every Space as a tab, nothing heavy at start-up, broken Spaces isolated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from gradio_client import Client

from shared import suite

ROOT = Path(__file__).resolve().parents[1]


def run(code: str, cwd: Path = ROOT) -> str:
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_app_imports_without_loading_models_or_heavy_libraries():
    out = run(
        """
        import json, sys
        import app
        from shared import registry
        heavy = [m for m in ("torch", "timm", "transformers", "diffusers") if m in sys.modules]
        print(json.dumps({"loaded": list(registry._cache), "heavy": heavy}))
        """
    )
    assert json.loads(out) == {"loaded": [], "heavy": []}


def test_every_space_is_a_tab_and_spaces_is_not_our_folder():
    names = suite.find_spaces()
    assert names, "no Space found under spaces/"
    assert not (ROOT / "spaces" / "__init__.py").exists()
    out = run(
        """
        import json, spaces, app
        print(json.dumps({"spaces": spaces.__file__, "gpu": hasattr(spaces, "GPU"),
                          "config": json.dumps(app.demo.config, ensure_ascii=False, default=str)}))
        """
    )
    result = json.loads(out)
    # `import spaces` is Hugging Face's ZeroGPU package even from the repo root.
    assert result["gpu"] and "site-packages" in result["spaces"]
    for name in names:
        assert suite.label(name) in result["config"]


GOOD = """
import gradio as gr
with gr.Blocks() as demo:
    box = gr.Textbox()
    out = gr.Textbox()
    box.submit(lambda s: s[::-1], box, out, api_name="reverse")
"""
BROKEN = "raise RuntimeError('boom: this Space cannot build')\n"


def test_a_broken_space_shows_an_error_and_the_others_work(tmp_path, monkeypatch, launch):
    for name, code in {"good": GOOD, "broken": BROKEN}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(code)
    (tmp_path / "good" / "README.md").write_text("---\ntitle: Good one\nemoji: ✅\n---\nhi\n")
    monkeypatch.setattr(suite, "SPACES", tmp_path)
    demo = suite.build_suite()
    config = json.dumps(demo.config, ensure_ascii=False, default=str)
    assert "✅ Good one" in config and "Broken" in config
    assert "could not be built" in config and "boom: this Space cannot build" in config
    client = Client(launch(demo), verbose=False)
    assert client.predict("abc", api_name="/reverse") == "cba"
