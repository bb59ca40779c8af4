"""The labelling loop through gradio_client on the served app (SQLite and PostgreSQL) (worker process, tiny detector):
the example project, tune, pre-annotate all, the review queue to its end, a stale review refused, a warm retune, the
learning curve."""
import time

import pytest

from app.settings import DEFAULT_METHOD

BOTH_DATABASES = True  # every test here runs on SQLite and on PostgreSQL (conftest.py)


def _wait(client, job_id, timeout_s=240):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = client.predict(job_id, api_name="/job_status")
        if status["status"] not in ("queued", "running"):
            return status
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {status}")


def test_the_loop_through_the_api(served_app):
    from gradio_client import Client

    url, _context, _worker = served_app
    client = Client(url, verbose=False)
    created = client.predict(api_name="/create_example_project")
    project = created["project_id"]
    assert created == {"project_id": project, "id": project}  # <thing>_id, and issue 17's {id} for one release
    assert client.predict(project, api_name="/learning_curve") == {"points": []}
    with pytest.raises(Exception, match="no tuned prompt yet"):
        client.predict(project, -1, 0.3, api_name="/preannotate_all")

    tuned = _wait(client, client.predict(project, DEFAULT_METHOD, 2, api_name="/tune")["job_id"])
    assert tuned["status"] == "done", tuned
    (first,) = client.predict(project, api_name="/learning_curve")["points"]
    assert set(first) == {"prompt_id", "confirmed_boxes", "map", "map50", "zero_shot_map", "zero_shot_map50"}
    assert first["confirmed_boxes"] > 0 and first["zero_shot_map"] is not None
    assert "held-out mAP" in tuned["message"] and f"{first['map']:.3f}" in tuned["message"]  # one number per prompt

    with pytest.raises(Exception, match="between 0 and 1"):
        client.predict(project, -1, 0, api_name="/preannotate_all")
    job = client.predict(project, -1, 0.05, api_name="/preannotate_all")["job_id"]
    done = _wait(client, job)
    assert done["status"] == "done" and done["kind"] == "preannotate" and done["step"] == 40, done

    image = client.predict(project, api_name="/next_to_review")["image_id"]
    shown = client.predict(image, api_name="/suggestions")
    boxes = shown["boxes"]
    assert boxes and set(boxes[0]) == {"suggestion_id", "id", "label", "xmin", "ymin", "xmax", "ymax", "score"}
    assert all(box["suggestion_id"] == box["id"] for box in boxes)
    with pytest.raises(Exception, match="accept must be a list of suggestion ids"):  # says what the call takes
        client.predict(image, "all", [], shown["revision"], api_name="/review")
    result = client.predict(image, [boxes[0]["id"]], [boxes[1]["id"]], shown["revision"], api_name="/review")
    assert result == {"image_id": image, "confirmed": 1, "suggested": len(boxes) - 2,
                      "revision": shown["revision"] + 1}
    with pytest.raises(Exception, match="changed in another tab"):  # a second tab still at the old revision
        client.predict(image, [], [boxes[2]["id"]], shown["revision"], api_name="/review")
    assert len(client.predict(image, api_name="/suggestions")["boxes"]) == len(boxes) - 2  # nothing lost

    reviewed = 0
    while (image := client.predict(project, api_name="/next_to_review")["image_id"]) is not None:
        shown = client.predict(image, api_name="/suggestions")
        accept = [b["id"] for b in shown["boxes"][:1]]
        reject = [b["id"] for b in shown["boxes"][1:]]
        assert client.predict(image, accept, reject, shown["revision"], api_name="/review")["suggested"] == 0
        reviewed += 1
        assert reviewed <= 40
    assert reviewed == 40  # every unlabelled image, once; the queue then answers null

    warm = _wait(client, client.predict(project, DEFAULT_METHOD, 2, True, api_name="/tune")["job_id"])
    assert warm["status"] == "done", warm
    points = client.predict(project, api_name="/learning_curve")["points"]
    assert len(points) == 2 and points[1]["confirmed_boxes"] > points[0]["confirmed_boxes"]
