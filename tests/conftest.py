"""Test harness: a loopback Hub, Gradio launchers, the suite in a browser.

The loopback Hub starts when this file is imported, before any test module imports
huggingface_hub (gradio imports it too), because huggingface_hub reads HF_ENDPOINT once.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hub_server import Server  # noqa: E402

_hub = Server()
_home = tempfile.mkdtemp(prefix="hf-home-")
os.environ.update(
    HF_ENDPOINT=_hub.url,
    HF_HOME=_home,  # a fresh cache, and no real token is ever read
    HF_TOKEN="hf_loopback_test_token",
    HF_HUB_DISABLE_XET="1",
    HF_HUB_DISABLE_TELEMETRY="1",
    HF_HUB_DISABLE_PROGRESS_BARS="1",
    HF_HUB_ETAG_TIMEOUT="5",
    HF_HUB_DOWNLOAD_TIMEOUT="10",
    GRADIO_ANALYTICS_ENABLED="False",
    DO_NOT_TRACK="1",
    DEMO_HUB_NAMESPACE="tests",
    TOKENIZERS_PARALLELISM="false",
    # no test reaches GroupLens: a port where nothing listens (tests that need the archive
    # serve one on 127.0.0.1 and point this at it)
    DEMO_MOVIELENS_URL="http://127.0.0.1:9/ml-100k.zip",
)
os.environ.pop("HF_HUB_OFFLINE", None)
for key in [k for k in os.environ if k.startswith("DEMO_MODEL_")]:
    del os.environ[key]

DATA = Path(os.environ.get("DEMO_DATA", ROOT.parent / "shared" / "data"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
_ids = itertools.count()


@pytest.fixture(scope="session")
def hub() -> Server:
    """The loopback Hub every test talks to through the real huggingface_hub client."""
    return _hub


@pytest.fixture
def repo_id(request: pytest.FixtureRequest) -> str:
    """A fresh, not yet created repo id."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:60]
    return f"tests/{name}-{next(_ids)}"


@pytest.fixture
def use_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """Point registry model `name` at `source` (repo id, repo@revision or folder) for one test."""
    from shared import registry

    names = []

    def use(name: str, source: str) -> None:
        monkeypatch.setenv(registry.env_var(name), str(source))
        registry.unload(name)
        names.append(name)

    yield use
    for name in names:
        registry.unload(name)


@pytest.fixture
def launch() -> Iterator[Callable]:
    """Launch a gr.Blocks on a free loopback port; returns its URL; closes it afterwards."""
    from shared import serve

    demos = []

    def run(demo) -> str:
        _, url, _ = serve.launch(
            demo, server_name="127.0.0.1", prevent_thread_lock=True, quiet=True
        )
        demos.append(demo)
        return url

    yield run
    for demo in demos:
        demo.close()


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module: tiny models gain nothing from threads, and on two shared
    cores idle-spinning threads make them many times slower. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def load_space() -> Callable:
    from shared.suite import load_space

    return load_space


@pytest.fixture
def data_dir() -> Callable[[str], Path]:
    """The real data folder `sub` under $DEMO_DATA, or skip the test."""

    def find(sub: str) -> Path:
        path = DATA / sub
        if not path.exists():
            pytest.skip(f"real data not found at {path} (set DEMO_DATA)")
        return path

    return find


@pytest.fixture(scope="session")
def suite_url() -> Iterator[str]:
    """The whole suite (app.py) served in this process."""
    from shared import serve
    from shared.suite import build_suite

    demo = build_suite()
    _, url, _ = serve.launch(demo, server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield url
    demo.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (make test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        # The first page of a fresh Chromium builds its font cache: do it once, not in a test.
        warm = browser.new_page()
        warm.set_content("<h1>warm-up</h1>")
        warm.close()
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    """A fresh Playwright page in headless Debian Chromium, 1280 px wide."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(90_000)  # 2 shared cores; gradio's first render is slow
    yield page
    context.close()


@pytest.fixture
def phone(browser) -> Iterator[object]:
    """A fresh page as a 390 px phone (an iPhone 12-14's viewport, touch, mobile layout)."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    page.set_default_timeout(90_000)
    yield page
    context.close()


ARTIFACTS = ROOT / "artifacts" / "screens"


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[object, str], Path]:
    """shot(page, "state"): a full-page screenshot in artifacts/screens/<test>/ (git-ignored),
    for a reviewer to look at."""
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")

    def take(page, name: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def no_horizontal_scroll(page) -> bool:
    """Whether the page fits its viewport's width (nothing to scroll sideways)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1"
    )


def above_the_fold(locator) -> bool:
    """Whether the element is fully visible without scrolling (at the top of the page)."""
    box = locator.bounding_box()
    height = locator.page.viewport_size["height"]
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height
