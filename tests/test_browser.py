"""The suite in a real browser (Debian's Chromium driven by Playwright), at 1280 px and as a
390 px phone. Screenshots of each state go to artifacts/screens/ for a reviewer."""

from __future__ import annotations

import pytest

from shared import registry, suite
from tests.conftest import no_horizontal_scroll

pytestmark = pytest.mark.browser
TITLE = "Practical Deep Learning — live demos"


def test_suite_renders_every_tab_without_loading_a_model(page, suite_url, shot):
    page.goto(suite_url)
    page.get_by_role("heading", name=TITLE).wait_for()
    for name in suite.find_spaces():
        page.get_by_role("tab", name=suite.label(name)).wait_for()
    shot(page, "desktop")
    assert registry._cache == {}  # rendering the page loads nothing


def test_on_a_phone_every_demo_is_one_tap_away_and_nothing_scrolls_sideways(phone, suite_url, shot):
    phone.goto(suite_url)
    phone.get_by_role("heading", name=TITLE).wait_for()
    tabs = [phone.get_by_role("tab", name=suite.label(n)) for n in suite.find_spaces()]
    for tab in tabs:  # visible at the top, not hidden in an overflow menu
        assert tab.is_visible()
        box = tab.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
    shot(phone, "phone-top")
    for name, tab in zip(suite.find_spaces(), tabs, strict=True):
        tab.tap()
        phone.wait_for_timeout(300)
        assert no_horizontal_scroll(phone), name
        shot(phone, f"phone-{name}")
