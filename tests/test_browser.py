"""The suite in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import pytest

from shared import registry, suite

pytestmark = pytest.mark.browser


def test_suite_renders_every_tab_without_loading_a_model(page, suite_url):
    page.goto(suite_url)
    page.get_by_role("heading", name="Practical Deep Learning — live demos").wait_for()
    for name in suite.find_spaces():
        page.get_by_role("tab", name=suite.label(name)).wait_for()
    assert registry._cache == {}  # rendering the page loads nothing
