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


# What each page did that a failed wait should report: navigations (a reload mid-test), script errors, console
# errors and failed requests, with the time since the page was opened.
_EVENTS: dict[int, list[str]] = {}


def watch(page) -> None:
    import time

    start = time.monotonic()
    events = _EVENTS[id(page)] = []  # a fresh list: a new page can reuse a closed page's id

    def note(text: str) -> None:
        events.append(f"{time.monotonic() - start:6.1f}s {text}")
    page.on("framenavigated", lambda frame: note(f"navigated to {frame.url}") if frame == page.main_frame else None)
    page.on("pageerror", lambda error: note(f"page error: {error}"))
    page.on("console", lambda message: note(f"console {message.type}: {message.text[:300]}")
            if message.type in ("error", "warning") else None)
    page.on("requestfailed", lambda request: note(f"request failed: {request.method} {request.url} "
                                                  f"({request.failure})"))
    page.on("crash", lambda _: note("page crashed"))


# The gradio apps the fixtures serve, so a failed wait can say whether the events it waited for were still queued on
# the server, running, or done (their answers lost on the way to the page).
SERVED: list = []


def server_state() -> str:
    lines = []
    for demo in SERVED:
        queue = getattr(demo, "_queue", None)
        if queue is None:
            continue

        def name(event):
            return getattr(event.fn, "name", None) or getattr(getattr(event.fn, "fn", None), "__name__", "?")
        queued = [name(e) for q in list(queue.event_queue_per_concurrency_id.values()) for e in list(q.queue)]
        running = [name(e) for job in list(queue.active_jobs) if job for e in job]
        pending = {s[:6]: len(ids) for s, ids in list(queue.pending_event_ids_session.items()) if ids}
        lines.append(f"server {getattr(demo, 'local_url', '?')}: queued {queued}, running {running}, "
                     f"events not yet delivered per session {pending}, stopped={queue.stopped}")
    return "\n".join(lines) or "(no served app)"


def page_events(page, last: int = 40) -> str:
    events = _EVENTS.get(id(page), [])
    return "\n".join(events[-last:]) or "(none)"


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
                             f"(test-artifacts/failed-wait.png); what the page did:\n{page_events(page)}\n"
                             f"{server_state()}")


# status trackers: the spinner over a component whose update is on its way (hidden when none is)
TRACKERS = "[...document.querySelectorAll('.wrap.default, .wrap.center')].filter(t => !t.classList.contains('hide'))"


def wait_for_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait until no gradio event is pending on the page: every status tracker is hidden. Drawing on the annotator
    while an older update is still on its way loses the box when that update lands (a CI-like run under load saved 0
    boxes that way).

    On a timeout the page is kept as a screenshot and the components whose spinners still show are named: a CI run
    timed out here at 60 s with no clue; the names showed a loop of project refreshes, gradio's replay of a change event
    with several listeners (app/ui/change_events.py). The page's own log and the server's queue are added too."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"() => {TRACKERS}.length === 0", timeout=timeout_ms)
    except PlaywrightTimeout:
        shot(page, "failed-idle")
        pending = page.evaluate(f"() => {TRACKERS}.map(t => (t.closest('[id]') || {{}}).id "
                                "|| t.parentElement?.className || '?')")
        raise AssertionError(f"the page was still busy after {timeout_ms / 1000:.0f} s; spinners showing in: "
                             f"{pending} (test-artifacts/failed-idle.png); what the page did:\n{page_events(page)}\n"
                             f"{server_state()}")
