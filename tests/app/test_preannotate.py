"""The worker's loop jobs on the example project (real SQLite and PostgreSQL, real synthetic images, the tiny
detector): the bulk pre-annotation job, a cancel halfway that leaves every image consistent, a rerun that keeps
confirmed boxes, and a tune then a warm retune, each scored on the held-out images."""
import pytest

from app import store, suggestions
from app.example import HELDOUT, TRAIN_LABELLED, UNLABELLED, create_example_project
from app.models import Suggestion
from app.preannotate import run_preannotate, score_suggestions
from app.settings import DEFAULT_METHOD
from app.worker import Worker
from sdpt.detector import Detections

BOTH_DATABASES = True  # every test here runs on SQLite and on PostgreSQL (conftest.py)


@pytest.fixture
def example(database, settings):
    with database.session() as session:
        return create_example_project(session, settings).id


def _confirmed(database, project_id):
    with database.session() as session:
        return sorted((b.image_id, b.class_id, b.x0, b.y0, b.x1, b.y1) for i in store.list_images(session, project_id)
                      for b in i.boxes)


def _suggestion_jobs(database, project_id):
    """{image id: set of job ids its suggestions came from} over the unreviewed training images."""
    with database.session() as session:
        jobs = {}
        for record in store.list_images(session, project_id):
            if record.split == "train" and not record.reviewed:
                jobs[record.id] = {s.job_id for s in session.query(Suggestion).filter_by(image_id=record.id)}
        return jobs


def test_the_example_project_is_what_its_description_says(database, example):
    with database.session() as session:
        project = store.get_project(session, example)
        images = [(i.split, bool(i.boxes), i.reviewed) for i in store.list_images(session, example)]
        assert "What to do next" in project.description and len(store.list_classes(session, example)) == 30
    assert sum(image == ("train", True, True) for image in images) == TRAIN_LABELLED
    assert sum(image == ("train", False, False) for image in images) == UNLABELLED
    assert sum(image == ("heldout", True, True) for image in images) == HELDOUT


def test_bulk_job_suggests_on_every_unreviewed_image_and_a_rerun_keeps_reviews(database, settings, example, detector):
    before = _confirmed(database, example)
    worker = Worker(database, settings, detector_loader=lambda _model: detector)
    with database.session() as session:
        first = suggestions.enqueue_preannotate(session, example, 0, 0.05, "tiny-random", detector.fingerprint()).id
    assert worker.run_once()
    with database.session() as session:
        job = store.get_job(session, first)
        assert (job.status, job.step, job.steps) == ("done", UNLABELLED, UNLABELLED), job.message
    jobs = _suggestion_jobs(database, example)
    assert len(jobs) == UNLABELLED and all(found == {first} for found in jobs.values())
    assert _confirmed(database, example) == before  # the job never touched a confirmed box

    # a person reviews two images: accepts everything on one, rejects everything on the other
    accepted, rejected = list(jobs)[:2]
    with database.session() as session:
        ids = [s["id"] for s in suggestions.suggestions_of(session, accepted)]
        suggestions.review(session, accepted, ids[:3], ids[3:], None)
        suggestions.review(session, rejected, [], [s["id"] for s in suggestions.suggestions_of(session, rejected)],
                           None)
    reviewed = _confirmed(database, example)
    assert len(reviewed) == len(before) + 3

    with database.session() as session:
        second = suggestions.enqueue_preannotate(session, example, 0, 0.05, "tiny-random", detector.fingerprint())
        assert accepted not in second.image_ids and rejected not in second.image_ids
        second = second.id
    assert worker.run_once()
    jobs = _suggestion_jobs(database, example)
    assert len(jobs) == UNLABELLED - 2 and all(found == {second} for found in jobs.values())
    assert _confirmed(database, example) == reviewed
    with database.session() as session:
        assert suggestions.list_suggestions(session, accepted) == []
        assert store.get_image(session, accepted).reviewed and store.get_image(session, rejected).reviewed


def test_a_cancel_halfway_leaves_each_image_with_its_old_or_its_new_suggestions(database, settings, example,
                                                                                 detector):
    worker = Worker(database, settings, detector_loader=lambda _model: detector)
    with database.session() as session:
        first = suggestions.enqueue_preannotate(session, example, 0, 0.05, "tiny-random", detector.fingerprint()).id
    worker.run_once()
    with database.session() as session:
        second = suggestions.enqueue_preannotate(session, example, 0, 0.2, "tiny-random", detector.fingerprint()).id
    calls = []

    def progress(done, total, message):
        calls.append(done)
        return len(calls) == 2  # the user pressed cancel during the second batch

    status, message = run_preannotate(database, settings, detector, second, progress)
    assert status == "cancelled" and "cancelled after 16/40 images" in message
    jobs = _suggestion_jobs(database, example)
    assert sum(found == {second} for found in jobs.values()) == 16
    assert sum(found == {first} for found in jobs.values()) == UNLABELLED - 16  # the rest kept the old ones whole


def test_a_tune_and_a_warm_retune_are_scored_on_the_held_out_images(database, settings, example, detector):
    worker = Worker(database, settings, detector_loader=lambda _model: detector)
    with database.session() as session:
        first = store.enqueue_job(session, example, DEFAULT_METHOD, 2, "tiny-random").id
    assert worker.run_once()
    with database.session() as session:
        prompt = store.latest_prompt(session, example)
        first_job = store.get_job(session, first)
        assert first_job.status == "done" and "held-out mAP" in first_job.message
        start = prompt.id
        suggest = suggestions.enqueue_preannotate(session, example, -1, 0.05, "tiny-random",
                                                  detector.fingerprint()).id
    # suggestions from the latest prompt, with the zero-shot pass that flags disagreements
    assert Worker(database, settings, detector_loader=lambda _model: detector, compare_zero_shot=True).run_once()
    with database.session() as session:
        assert store.get_job(session, suggest).status == "done", store.get_job(session, suggest).message
        written = session.query(Suggestion).filter_by(job_id=suggest).all()
        assert written and {(s.source, s.prompt_id) for s in written} == {("prompt", start)}
        warm = store.enqueue_job(session, example, "text", 2, "tiny-random", warm_from=start)
        assert warm.prompt_id == start and warm.method == prompt.method  # a warm retune keeps the prompt's method
        warm = warm.id
    assert worker.run_once()
    with database.session() as session:
        assert store.get_job(session, warm).status == "done", store.get_job(session, warm).message
        curve = suggestions.learning_curve(session, example)
        train_boxes = sum(len(i.boxes) for i in store.list_images(session, example) if i.split == "train")
    assert [p["prompt_id"] for p in curve][0] == start and len(curve) == 2
    assert all(p["confirmed_boxes"] == train_boxes and 0.0 <= p["map"] <= p["map50"] <= 1.0 for p in curve)


def test_uncertainty_is_high_near_the_threshold_for_rival_classes_and_when_zero_shot_disagrees():
    import torch

    names = ["cell", "debris"]
    found = Detections(torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60], [80, 80, 90, 90]],
                                    dtype=torch.float32), torch.tensor([0, 1, 0, 0]),
                       torch.tensor([0.95, 0.5, 0.95, 0.32]), names)
    zero_shot = Detections(torch.tensor([[50, 50, 60, 60]], dtype=torch.float32), torch.tensor([0]),
                           torch.tensor([0.9]), names)
    scored = score_suggestions(found, 0.3, zero_shot)
    by_box = {(s["xmin"], s["label"]): s["uncertainty"] for s in scored}
    assert by_box[(50.0, "cell")] == 0.0  # confident, alone, and zero-shot agrees
    assert by_box[(80.0, "cell")] > 0.9  # just above the threshold
    assert by_box[(0.0, "cell")] >= 0.5  # 'debris' claims the same object
    assert len(scored) == 4 and all(s["score"] >= 0.3 for s in scored)
    assert score_suggestions(found, 0.7)[0]["uncertainty"] == 0.0  # the rival is below the near band now
