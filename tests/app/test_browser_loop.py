"""A real browser (Playwright driving Debian's Chromium) through the labelling loop on the example project with the
shipped small model: one click makes the example, tune a few steps, pre-annotate all, review two images with the
keyboard, warm retune, and two points on the learning curve. Screenshots go to test-artifacts/loop-*.png."""
import pytest

from app import store, suggestions
from app.settings import SHIPPED_MODEL
from tests.app.conftest import make_settings, serve
from tests.app.browser_helpers import pytestmark, shot, wait_for_status  # noqa: F401 (skip mark)

STEPS = 4


@pytest.fixture
def loop_app(tmp_path):
    """(url, context, worker): the app on the shipped small model, with its worker process."""
    from app.models_service import ModelService
    from sdpt.detector import load_detector

    settings = make_settings(tmp_path / "data", worker=True)
    settings.model = str(SHIPPED_MODEL)
    models = ModelService(detector=load_detector(str(SHIPPED_MODEL), device="cpu"), note="Model: sdpt-small.")
    with serve(settings, models) as served:
        yield served


def _wait_job_done(page, context, project_id, count):
    """Wait until the project's `count`-th job is done, as the page shows it."""
    with context.database.session() as session:
        job_id = max(j.id for j in store.list_jobs(session, project_id))
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "(id) => { const t = document.querySelector('#job-progress')?.innerText || '';"
            " return t.includes('Job ' + id) && t.includes('done'); }", arg=job_id, timeout=300_000)
    except PlaywrightTimeout:
        # say what the page and the database showed: a flaky wait is a bug to find, not to retry
        shot(page, "failed-job-wait")
        shown = page.locator("#job-progress").inner_text(timeout=5000)
        with context.database.session() as session:
            job = store.get_job(session, job_id)
            row = (job.status, job.step, job.message, job.finished_at)
        raise AssertionError(f"job {job_id} not shown done; the page shows {shown!r}; the job row is {row!r}")
    with context.database.session() as session:
        assert len(store.list_jobs(session, project_id)) == count
        assert store.get_job(session, job_id).status == "done"


def _curve_rows(page, rows):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        # six numeric cells per point (the headers hold none): version, id, boxes, mAP, mAP@.5, zero-shot mAP
        page.wait_for_function("(n) => (document.querySelector('#learning-curve')?.innerText || '').split(/\\s+/)"
                               ".filter(t => /^-?\\d+(\\.\\d+)?$/.test(t)).length === 6 * n", arg=rows,
                               timeout=60_000)
    except PlaywrightTimeout:
        shot(page, "failed-wait")
        table = page.locator("#learning-curve").inner_text(timeout=5000)
        raise AssertionError(f"the learning curve table did not reach {rows} rows; it shows {table!r}")


def _press(page, key):
    page.locator("#review-counts").click()  # focus off any input: page shortcuts ignore keys typed into fields
    page.keyboard.press(key)


def test_the_loop_on_the_example_project(loop_app, page):
    url, context, _worker = loop_app
    page.goto(url)
    page.get_by_text("Try the example project").first.wait_for()
    page.locator("#create-example").click()
    wait_for_status(page, "created the example project")
    page.locator("#project-description").get_by_text("What to do next").wait_for()
    shot(page, "loop-01-example-project")
    with context.database.session() as session:
        (project,) = store.list_projects(session)
        project_id = project.id

    page.get_by_role("tab", name="3 · Tune").click()
    page.locator("#steps input").fill(str(STEPS))
    page.locator("#tune").click()
    wait_for_status(page, "queued tuning job")
    _wait_job_done(page, context, project_id, 1)
    _curve_rows(page, 1)
    page.locator("#curve-plot img").first.wait_for()  # the plot (matplotlib: points, and the zero-shot line)
    shot(page, "loop-02-tuned")
    with context.database.session() as session:
        (point,) = suggestions.learning_curve(session, project_id)
    # the first prompt, as routed, is never below zero-shot on the held-out images that chose its routes
    assert point["map"] >= point["zero_shot_map"] - 1e-9, point

    # the Evaluate tab names the prompt, gives the curve's number, and shows each class's route and both APs
    page.get_by_role("tab", name="5 · Evaluate").click()
    page.locator("#evaluate").click()
    page.locator("#evaluation-summary").get_by_text(f"prompt {point['prompt_id']}").wait_for(timeout=120_000)
    assert f"{point['map']:.3f}" in page.locator("#evaluation-summary").inner_text()
    per_class = page.locator("#per-class").inner_text()
    assert "answered by" in per_class and "AP zero-shot" in per_class and "AP prompted" in per_class
    assert ("zero-shot" in per_class.split("answered by", 1)[1]) or ("prompt" in per_class.split("answered by", 1)[1])
    shot(page, "loop-02b-evaluate-routes")

    page.get_by_role("tab", name="2b · Review").click()
    page.locator("#preannotate-all").click()
    wait_for_status(page, "queued pre-annotation job")
    page.wait_for_function("() => (document.querySelector('#preannotate-progress')?.innerText || '')"
                           ".includes('done')", timeout=300_000)
    page.locator("#review-counts").get_by_text("with suggestions to review").wait_for()
    with context.database.session() as session:
        counts = suggestions.review_counts(session, project_id)
        first = suggestions.next_to_review(session, project_id)
        suggested_on_first = len(suggestions.list_suggestions(session, first))
    assert counts["images"]["unreviewed"] + counts["images"]["suggested"] == 40 and counts["boxes"]["suggested"] > 0
    shot(page, "loop-03-preannotated")

    _press(page, "r")  # the most uncertain image first
    wait_for_status(page, f"opened image {first}")
    page.locator("#review-annotator canvas").first.wait_for()
    page.wait_for_timeout(800)
    shot(page, "loop-04-review-first-image")
    _press(page, "a")  # accept all
    wait_for_status(page, f"accepted {suggested_on_first}")
    with context.database.session() as session:
        assert len(store.get_image(session, first).boxes) == suggested_on_first
        assert store.get_image(session, first).reviewed
        second = suggestions.next_to_review(session, project_id)
        pending = [s.id for s in suggestions.list_suggestions(session, second)]

    _press(page, "r")
    wait_for_status(page, f"opened image {second}")
    page.wait_for_timeout(500)
    if pending:
        _press(page, "y")  # accept the highlighted suggestion
        wait_for_status(page, "accepted 1")
    if len(pending) > 1:
        _press(page, "x")  # reject the next one, now highlighted
        wait_for_status(page, f"rejected suggestion {pending[1]}")
    page.wait_for_timeout(500)
    shot(page, "loop-05-review-second-image")
    with context.database.session() as session:
        left = {s.id for s in suggestions.list_suggestions(session, second)}
        assert left == set(pending[2:])
        assert len(store.get_image(session, second).boxes) == min(1, len(pending))

    page.get_by_role("tab", name="3 · Tune").click()
    page.locator("#warm-retune input").check()
    page.locator("#tune").click()
    wait_for_status(page, "continuing from prompt")
    _wait_job_done(page, context, project_id, 3)
    _curve_rows(page, 2)  # two points on the learning curve
    page.wait_for_timeout(1000)
    shot(page, "loop-06-learning-curve")
    with context.database.session() as session:
        points = suggestions.learning_curve(session, project_id)
    assert len(points) == 2 and points[1]["confirmed_boxes"] > points[0]["confirmed_boxes"]

    # the Evaluate tab says what a prompt is for: its project's class names, not others
    page.get_by_role("tab", name="5 · Evaluate").click()
    page.locator("#other-classes-note").get_by_text("tuned for this project's class names").wait_for()
    assert "use the zero-shot model" in page.locator("#other-classes-note").inner_text()
