"""The labelling loop's store on real SQLite and PostgreSQL: the suggestion lifecycle, confirmed boxes never touched by
jobs, the review queue's order and counts, refusals that write nothing, export flags and the learning curve."""
import json
import zipfile

import pytest
from PIL import Image

from app import store, suggestions
from app.exchange import export_project_zip, import_zip
from app.image_files import store_upload
from app.models import PromptRecord

BOTH_DATABASES = True  # every test here runs on SQLite and on PostgreSQL (conftest.py)


def _image(session, settings, tmp_path, project_id, name, colour, split="train"):
    path = tmp_path / f"{name}.png"
    Image.new("RGB", (100, 80), colour).save(path)
    return store.add_image(session, project_id, store_upload(path, settings.images_dir, 2**20), split)[0].id


@pytest.fixture
def project(database, settings, tmp_path):
    """Three training images (one labelled by a person) and the ids: (project, labelled, a, b)."""
    with database.session() as session:
        project_id = store.create_project(session, "Loop").id
        store.add_class(session, project_id, "cell")
        store.add_class(session, project_id, "debris")
        labelled = _image(session, settings, tmp_path, project_id, "l", (10, 10, 10))
        store.save_boxes(session, labelled, [{"label": "cell", "xmin": 5, "ymin": 5, "xmax": 30, "ymax": 30}])
        a = _image(session, settings, tmp_path, project_id, "a", (20, 20, 20))
        b = _image(session, settings, tmp_path, project_id, "b", (30, 30, 30))
    return project_id, labelled, a, b


def _found(label, x0, score, uncertainty=0.0):
    return {"label": label, "xmin": x0, "ymin": 10, "xmax": x0 + 20, "ymax": 40, "score": score,
            "uncertainty": uncertainty}


def test_suggestions_stay_apart_and_jobs_never_touch_confirmed_boxes(database, project):
    project_id, labelled, a, _b = project
    with database.session() as session:
        # a job writing onto an image a person labelled is refused as a whole
        assert not suggestions.write_suggestions(session, labelled, [_found("cell", 50, 0.9)], "zero-shot", None, None)
        assert suggestions.write_suggestions(session, a, [_found("cell", 10, 0.8), _found("debris", 50, 0.4)],
                                             "zero-shot", None, None)
    with database.session() as session:
        assert [(b.x0, b.label.name) for b in store.get_image(session, labelled).boxes] == [(5.0, "cell")]
        assert suggestions.list_suggestions(session, labelled) == []
        assert store.get_image(session, a).boxes == []  # suggestions are not boxes: nothing trains on them
        first = suggestions.suggestions_of(session, a)
        assert [(s["label"], s["score"], s["source"]) for s in first] == [("cell", 0.8, "zero-shot"),
                                                                           ("debris", 0.4, "zero-shot")]
        # a rerun replaces the unreviewed image's suggestions, whole
        assert suggestions.write_suggestions(session, a, [_found("debris", 60, 0.7)], "prompt", None, None)
    with database.session() as session:
        (only,) = suggestions.suggestions_of(session, a)
        assert (only["label"], only["xmin"], only["source"]) == ("debris", 60.0, "prompt")
        counts = suggestions.review_counts(session, project_id)
    assert counts == {"images": {"confirmed": 1, "suggested": 1, "unreviewed": 1},
                      "boxes": {"confirmed": 1, "suggested": 1}}


def test_review_accepts_rejects_and_edits_then_marks_the_image_reviewed(database, project):
    _project_id, _labelled, a, _b = project
    with database.session() as session:
        suggestions.write_suggestions(session, a, [_found("cell", 10, 0.9), _found("debris", 40, 0.5),
                                                   _found("cell", 70, 0.35)], "zero-shot", None, None)
        revision = store.get_image(session, a).revision
        ids = [s["id"] for s in suggestions.suggestions_of(session, a)]
    with database.session() as session:
        result = suggestions.review(session, a, [ids[0]], [ids[1]], revision)
    assert (result["confirmed"], result["suggested"], result["revision"]) == (1, 1, revision + 1)
    with database.session() as session:
        assert not store.get_image(session, a).reviewed  # one suggestion still waits
        edited = {"id": ids[2], "xmin": 72, "ymin": 12, "xmax": 95, "ymax": 44, "label": "debris"}
        result = suggestions.review(session, a, [edited], [], result["revision"])
    assert result["suggested"] == 0
    with database.session() as session:
        record = store.get_image(session, a)
        assert record.reviewed
        assert sorted((b.label.name, b.x0, b.y1) for b in record.boxes) == [("cell", 10.0, 40.0),
                                                                            ("debris", 72.0, 44.0)]
        # a reviewed image is left alone by the next pre-annotation
        assert not suggestions.write_suggestions(session, a, [_found("cell", 10, 0.9)], "zero-shot", None, None)


def test_stale_review_and_a_deleted_class_are_refused_and_nothing_changes(database, project):
    project_id, _labelled, a, _b = project
    with database.session() as session:
        suggestions.write_suggestions(session, a, [_found("cell", 10, 0.9), _found("debris", 50, 0.6)],
                                      "zero-shot", None, None)
        revision = store.get_image(session, a).revision
        cell, debris = [s["id"] for s in suggestions.suggestions_of(session, a)]
    with database.session() as session:  # another tab accepted one meanwhile
        suggestions.review(session, a, [cell], [], revision)
    with pytest.raises(store.StoreError, match="changed in another tab"):
        with database.session() as session:
            suggestions.review(session, a, [], [debris], revision)
    with database.session() as session:
        (debris_class,) = [c for c in store.list_classes(session, project_id) if c.name == "debris"]
        store.delete_class(session, debris_class.id)
    with database.session() as session:
        revision = store.get_image(session, a).revision
    with pytest.raises(store.StoreError, match="'debris', a class that was deleted"):
        with database.session() as session:
            suggestions.review(session, a, [debris], [], revision)
    with pytest.raises(store.StoreError, match="not on"):
        with database.session() as session:
            suggestions.review(session, a, [], [9999], revision)
    with database.session() as session:
        assert [s["id"] for s in suggestions.suggestions_of(session, a)] == [debris]
        assert len(store.get_image(session, a).boxes) == 1
        # rejecting it is still possible, and finishes the image
        assert suggestions.review(session, a, [], [debris], revision)["suggested"] == 0


def test_the_queue_puts_uncertain_suggestions_first_and_ends_with_none(database, project):
    project_id, _labelled, a, b = project
    with database.session() as session:
        assert suggestions.next_to_review(session, project_id) == a  # no suggestions yet: by id
        suggestions.write_suggestions(session, a, [_found("cell", 10, 0.95, 0.1)], "zero-shot", None, None)
        suggestions.write_suggestions(session, b, [_found("cell", 10, 0.33, 0.9)], "zero-shot", None, None)
        assert suggestions.next_to_review(session, project_id) == b
        assert suggestions.next_to_review(session, project_id, skip=(b,)) == a
        for image_id in (a, b):
            ids = [s["id"] for s in suggestions.suggestions_of(session, image_id)]
            suggestions.review(session, image_id, ids, [], None)
        assert suggestions.next_to_review(session, project_id) is None


def test_preannotate_refuses_a_prompt_for_another_base_or_other_classes(database, project):
    project_id, *_ = project
    with database.session() as session:
        other_base = PromptRecord(project_id=project_id, method="text", relative_dir="x", base_model="big/model",
                                  base_fingerprint="abc", class_names=["cell", "debris"], trainable_parameters=1)
        other_classes = PromptRecord(project_id=project_id, method="text", relative_dir="y", base_model="tiny",
                                     base_fingerprint="f1", class_names=["cell"], trainable_parameters=1)
        session.add_all([other_base, other_classes])
        session.flush()
        ids = other_base.id, other_classes.id
    with pytest.raises(store.StoreError, match="tuned on base model 'big/model'"):
        with database.session() as session:
            suggestions.enqueue_preannotate(session, project_id, ids[0], 0.3, "tiny", "f1")
    with pytest.raises(store.StoreError, match="tuned for the classes cell, but the project has cell, debris"):
        with database.session() as session:
            suggestions.enqueue_preannotate(session, project_id, -1, 0.3, "tiny", "f1")  # -1: the latest
    with pytest.raises(store.StoreError, match="between 0 and 1"):
        with database.session() as session:
            suggestions.enqueue_preannotate(session, project_id, 0, 1.5, "tiny", "f1")
    with database.session() as session:
        job = suggestions.enqueue_preannotate(session, project_id, 0, 0.3, "tiny", "f1")
        assert (job.kind, job.prompt_id, job.steps) == ("preannotate", None, 2)  # the labelled image is skipped
        assert store.list_jobs(session, project_id) == [job]
        job_id = job.id
    with pytest.raises(store.StoreError, match=f"pre-annotation job {job_id} of this project is still queued"):
        with database.session() as session:
            suggestions.enqueue_preannotate(session, project_id, 0, 0.3, "tiny", "f1")


def test_export_holds_confirmed_boxes_and_flags_suggestions_only_when_asked(database, settings, project, tmp_path):
    project_id, _labelled, a, _b = project
    with database.session() as session:
        suggestions.write_suggestions(session, a, [_found("debris", 10, 0.6)], "zero-shot", None, None)

    def annotations(**flags):
        path = export_project_zip(database, settings, project_id, tmp_path / "out", **flags)
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("annotations.json"))["annotations"]

    assert [a.get("suggested") for a in annotations()] == [None]
    both = annotations(include_suggestions=True)
    assert [(a.get("suggested"), a.get("score")) for a in both] == [(None, None), (True, 0.6)]
    # the import of such a file reads the confirmed box only
    with database.session() as session:
        target = store.create_project(session, "Copy").id
    counts = import_zip(database, settings, target, tmp_path / "out" / f"project-{project_id}.zip")
    assert counts["boxes"] == 1


def test_tuning_leaves_out_unlabelled_images_and_warm_start_checks_classes(database, project):
    project_id, labelled, *_ = project
    with database.session() as session:
        job = store.enqueue_job(session, project_id, "text", 3, "tiny")
        assert job.image_ids == [labelled]  # the unreviewed, unlabelled images are not negatives
        stale = PromptRecord(project_id=project_id, method="text", relative_dir="z", base_model="tiny",
                             base_fingerprint="f1", class_names=["cell"], trainable_parameters=1)
        session.add(stale)
        session.flush()
        stale_id = stale.id
    with pytest.raises(store.StoreError, match="other classes"):
        with database.session() as session:
            store.enqueue_job(session, project_id, "text", 3, "tiny", warm_from=stale_id)
    with database.session() as session:
        suggestions.record_heldout(session, stale_id, 7, {"routed": {"map": 0.25, "map50": 0.5, "images": 3},
                                                           "zero-shot": {"map": 0.2, "map50": 0.4}})
        assert suggestions.learning_curve(session, project_id) == [
            {"prompt_id": stale_id, "confirmed_boxes": 7, "map": 0.25, "map50": 0.5, "zero_shot_map": 0.2,
             "zero_shot_map50": 0.4}]


def test_saving_the_review_editor_accepts_moved_rejects_deleted_and_keeps_the_rest(database, project):
    _project_id, _labelled, a, _b = project
    with database.session() as session:
        suggestions.write_suggestions(session, a, [_found("cell", 10, 0.9), _found("debris", 40, 0.6),
                                                   _found("cell", 70, 0.4)], "zero-shot", None, None)
        revision = store.get_image(session, a).revision
        moved, deleted, untouched = suggestions.suggestions_of(session, a)
    drawn = {"label": "debris", "xmin": 1, "ymin": 50, "xmax": 20, "ymax": 70}  # a box the model missed
    kept = {moved["id"]: {**moved, "xmin": 14, "xmax": 34}, untouched["id"]: dict(untouched)}
    with database.session() as session:
        result = suggestions.save_review(session, a, revision, [drawn], kept)
    assert (result["accepted"], result["rejected"], result["suggested"], result["confirmed"]) == (1, 1, 1, 2)
    with database.session() as session:
        record = store.get_image(session, a)
        assert sorted((b.label.name, b.x0, b.x1) for b in record.boxes) == [("cell", 14.0, 34.0), ("debris", 1.0, 20.0)]
        assert [s["id"] for s in suggestions.suggestions_of(session, a)] == [untouched["id"]]
        assert not record.reviewed
    with pytest.raises(store.StoreError, match="changed in another tab"):  # the editor's revision is now stale
        with database.session() as session:
            suggestions.save_review(session, a, revision, [], {})
