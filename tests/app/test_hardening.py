"""What a fresh look and an attacker found (issue 25), each refused with a message and nothing changed: NaN, true and
infinite coordinates over raw HTTP and in COCO imports, ids beyond 64 bits, a bad split on an image already there,
and a job whose worker died while every worker is busy."""
import json
import time

import httpx
import pytest
from PIL import Image

from app import store


def _post(http, endpoint: str, data: list) -> httpx.Response:
    # json.dumps writes NaN and Infinity as bare words, as a hand-written HTTP client can
    body = json.dumps({"data": data, "session_hash": "hardening-test"})
    return http.post(f"/gradio_api/run/{endpoint}", content=body, headers={"content-type": "application/json"})


def _error(response: httpx.Response) -> str:
    return json.dumps(response.json()) if response.headers.get("content-type", "").startswith("application/json") \
        else response.text


@pytest.fixture
def labelled_image(served_app, tmp_path):
    url, context, _worker = served_app
    picture = tmp_path / "part.png"
    Image.new("RGB", (120, 90), (90, 90, 90)).save(picture)
    from app.image_files import store_upload

    with context.database.session() as session:
        project = store.create_project(session, "Parts").id
        store.add_class(session, project, "bolt")
        stored = store_upload(str(picture), context.settings.images_dir, 2**24, original_name="part.png")
        image = store.add_image(session, project, stored, "train")[0].id
        store.save_boxes(session, image, [{"label": "bolt", "xmin": 20, "ymin": 10, "xmax": 50, "ymax": 40}])
    return url, context, project, image


def _boxes(context, image):
    with context.database.session() as session:
        return store.boxes_of(store.get_image(session, image))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "12", 10**400])
def test_non_finite_or_bool_coordinates_over_raw_http_are_refused_and_the_boxes_stay(labelled_image, bad):
    url, context, _project, image = labelled_image
    before = _boxes(context, image)
    with httpx.Client(base_url=url, timeout=30) as http:
        answer = _post(http, "save_boxes", [image, [{"label": "bolt", "xmin": bad, "ymin": bad, "xmax": bad,
                                                      "ymax": bad}], -1])
    text = _error(answer)
    assert "must be a" in text and "number of pixels" in text, text
    assert _boxes(context, image) == before


def test_nan_in_an_edited_review_is_refused(labelled_image):
    from app import suggestions

    url, context, _project, image = labelled_image
    with context.database.session() as session:  # back to an unreviewed image without boxes, then one suggestion
        record = store.get_image(session, image)
        record.reviewed = False
        record.boxes.clear()
        session.flush()
        suggestions.write_suggestions(session, image, [{"label": "bolt", "xmin": 5, "ymin": 5, "xmax": 30, "ymax": 30,
                                                        "score": 0.9}], "zero-shot", None, None)
        (pending,) = suggestions.suggestions_of(session, image)
    edit = {"id": pending["id"], "xmin": float("nan"), "ymin": 1, "xmax": 2, "ymax": 3}
    with context.database.session() as session, pytest.raises(store.StoreError, match="finite number"):
        suggestions.review(session, image, [edit], [], None)
    with context.database.session() as session:
        assert _boxes(context, image) == [] and len(suggestions.suggestions_of(session, image)) == 1


def test_a_coco_box_with_nan_is_refused(labelled_image, tmp_path):
    from app import exchange

    _url, context, project, image = labelled_image
    picture = tmp_path / "other.png"
    Image.new("RGB", (64, 48), (10, 200, 10)).save(picture)
    coco = {"images": [{"id": 1, "file_name": "other.png", "width": 64, "height": 48}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [float("nan"), 1, 2, 3]}],
            "categories": [{"id": 1, "name": "bolt"}]}
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(coco))
    files = sorted(p for p in context.settings.images_dir.rglob("*") if p.is_file())
    with pytest.raises(exchange.ExchangeError, match="four numbers .* all finite"):
        exchange.import_coco(context.database, context.settings, project, path, {"other.png": picture})
    with context.database.session() as session:
        assert len(store.list_images(session, project)) == 1
    # the refused import took back the image file it had stored: the store is as it was
    assert sorted(p for p in context.settings.images_dir.rglob("*") if p.is_file()) == files


def test_api_calls_with_extra_or_malformed_values_are_refused_and_change_nothing(labelled_image):
    url, context, _project, image = labelled_image
    before = _boxes(context, image)
    with httpx.Client(base_url=url, timeout=30) as http:
        # gradio would drop the extra values and run the call: here that would delete the image's boxes
        text = _error(_post(http, "save_boxes", [image, [], -1, 1, 2]))
        assert "/save_boxes takes 3 values, got 5; remove the extra ones" in text, text
        for body in (b"{not json", json.dumps({"data": {"image": image}}).encode()):
            answer = http.post("/gradio_api/run/save_boxes", content=body,
                               headers={"content-type": "application/json"})
            assert answer.status_code == 400 and 'needs a JSON body {"data": [...]}' in answer.json()["error"], \
                answer.text
    assert _boxes(context, image) == before


def test_ids_beyond_64_bits_get_the_unknown_id_answer(labelled_image):
    url, _context, _project, image = labelled_image
    with httpx.Client(base_url=url, timeout=30) as http:
        for endpoint, data in (("get_boxes", [10**30]), ("job_status", [10**30]), ("list_images", [10**30]),
                               ("save_boxes", [10**30, [], -1])):
            text = _error(_post(http, endpoint, data))
            assert "does not exist" in text and "upstream" not in text, (endpoint, text)


def test_a_bad_split_is_refused_even_for_an_image_already_there(labelled_image, tmp_path):
    from gradio_client import Client, handle_file

    url, context, project, image = labelled_image
    picture = tmp_path / "new.png"
    Image.new("RGB", (30, 30), (1, 2, 3)).save(picture)
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="split must be one of"):
        client.predict(project, handle_file(str(picture)), "validation", api_name="/add_image")
    stored = sorted(p.name for p in context.settings.images_dir.rglob("*") if p.is_file())
    with pytest.raises(Exception, match="split must be one of"):
        client.predict(project, handle_file(str(tmp_path / "part.png")), "validation", api_name="/add_image")
    # nothing new in the image store: the refused upload was never kept
    assert sorted(p.name for p in context.settings.images_dir.rglob("*") if p.is_file()) == stored


def test_a_dead_workers_job_shows_interrupted_while_every_worker_is_busy(settings, database):
    """No idle worker runs the staleness check here: the job's own status read finds it."""
    from app.context import AppContext
    from app.ui import tuning

    with database.session() as session:
        project = store.create_project(session, "Jobs").id
        store.add_class(session, project, "bolt")
        job = store.TuningJob(project_id=project, method="sdpt", steps=10, model_id="tiny", image_ids=[],
                              class_names=["bolt"], losses=[], message="queued")
        session.add(job)
        session.flush()
        job_id = job.id
        store.claim_job(session, "worker-that-dies")
    settings.stale_after_s = 1.0
    context = AppContext(database, settings, None)
    assert "running" in tuning.job_view(context, job_id)[0]
    time.sleep(1.5)  # no heartbeat: the worker is gone
    text, _ = tuning.job_view(context, job_id)
    assert "interrupted" in text, text
    with database.session() as session:
        assert store.get_job(session, job_id).status == "interrupted"


def test_cancel_of_a_running_job_says_cancelling(database):
    with database.session() as session:
        project = store.create_project(session, "Cancel").id
        job = store.TuningJob(project_id=project, method="sdpt", steps=10, model_id="tiny", image_ids=[],
                              class_names=["bolt"], losses=[], message="queued")
        session.add(job)
        session.flush()
        store.claim_job(session, "w")
        assert store.request_cancel(session, job.id).message == "cancelling..."


def test_a_refusal_is_logged_as_one_line_not_a_traceback(labelled_image, capfd, caplog):
    import logging

    url, _context, _project, image = labelled_image
    caplog.set_level(logging.INFO, logger="app.ui.api")
    capfd.readouterr()
    with httpx.Client(base_url=url, timeout=30) as http:
        text = _error(_post(http, "save_boxes", [image, [{"label": "nope", "xmin": 1, "ymin": 1, "xmax": 9,
                                                          "ymax": 9}], -1]))
    assert "not in this project" in text
    assert "Traceback" not in capfd.readouterr().err
    assert any("/save_boxes refused" in r.getMessage() for r in caplog.records)


def test_an_image_whose_file_is_missing_gets_a_message_that_says_what_to_do(labelled_image):
    import dataclasses

    from app.access import User
    from app.ui import labelling, review

    _url, context, _project, image = labelled_image
    with context.database.session() as session:
        path = store.image_file(context.settings.images_dir, store.get_image(session, image))
    path.unlink()
    ctx = dataclasses.replace(context, user=User(context.settings.admin_user, everything=True))
    value, _revision, _split, message = labelling.editor_value(ctx, image)
    assert value is None and "is missing from the image store" in message and "upload the image again" in message
    assert "its 1 boxes are kept" in message
    assert "is missing from the image store" in review.editor_value(ctx, image)[2]
    assert len(_boxes(context, image)) == 1  # nothing lost
