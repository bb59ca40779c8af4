"""Browser-test helpers: where Debian's Chromium is, the skip mark for machines without it, screenshots, and a wait
that says what the page showed when it times out. The `browser` and `page` fixtures are in conftest.py."""
import os
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# CI (.ci/run) installs chromium and sets SDPT_REQUIRE_BROWSER=1, so there a missing browser fails instead of skipping.
pytestmark = pytest.mark.skipif(CHROMIUM is None and os.environ.get("SDPT_REQUIRE_BROWSER") != "1",
                                reason="Debian's chromium is not installed (apt-get install chromium)")


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def wait_for_status(page, text: str) -> None:
    """Wait for `text` in the page; on a timeout, fail with what the status line said instead and keep a screenshot
    (a CI run once timed out here with no clue what the page showed)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_text(text).wait_for()
    except PlaywrightTimeout:
        shot(page, "failed-wait")
        status = page.locator("#status").inner_text(timeout=5000)
        raise AssertionError(f"timed out waiting for {text!r}; the status line says {status!r} "
                             "(test-artifacts/failed-wait.png)")


# status trackers: the spinner over a component whose update is on its way (hidden when none is)
TRACKERS = "[...document.querySelectorAll('.wrap.default, .wrap.center')].filter(t => !t.classList.contains('hide'))"


def wait_for_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait until no gradio event is pending on the page: every status tracker is hidden. Drawing on the annotator
    while an older update is still on its way loses the box when that update lands (a CI-like run under load saved 0
    boxes that way).

    On a timeout the page is kept as a screenshot and the components whose spinners still show are named: a CI run
    timed out here at 60 s with no clue; the names showed a loop of project refreshes (closing note of 2026-12-07)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"() => {TRACKERS}.length === 0", timeout=timeout_ms)
    except PlaywrightTimeout:
        shot(page, "failed-idle")
        pending = page.evaluate(f"() => {TRACKERS}.map(t => (t.closest('[id]') || {{}}).id "
                                "|| t.parentElement?.className || '?')")
        raise AssertionError(f"the page was still busy after {timeout_ms / 1000:.0f} s; spinners showing in: "
                             f"{pending} (test-artifacts/failed-idle.png)")
