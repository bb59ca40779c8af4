"""The served app driven through gradio_client: the same calls a script (or another tool) would make."""
import time

import pytest
from PIL import Image

BOTH_DATABASES = True  # every test here runs on SQLite and on PostgreSQL (conftest.py)


def test_label_and_tune_through_the_api(served_app, tmp_path):
    from gradio_client import Client, handle_file

    url, _context, _worker = served_app
    client = Client(url, verbose=False)
    project = client.predict("Parts", api_name="/create_project")["id"]
    client.predict(project, "bolt", api_name="/add_class")
    picture = tmp_path / "part.png"
    Image.new("RGB", (120, 90), (90, 90, 90)).save(picture)
    image = client.predict(project, handle_file(str(picture)), "train", api_name="/add_image")
    assert (image["width"], image["height"], image["new"]) == (120, 90, True)

    with pytest.raises(Exception, match="inverted"):
        client.predict(image["id"], [{"label": "bolt", "xmin": 50, "ymin": 10, "xmax": 20, "ymax": 40}], 0,
                       api_name="/save_boxes")
    saved = client.predict(image["id"], [{"label": "bolt", "xmin": 20, "ymin": 10, "xmax": 50, "ymax": 40}], 0,
                           api_name="/save_boxes")
    assert saved == {"boxes": 1, "revision": 1}
    with pytest.raises(Exception, match="another tab"):  # a second editor still at revision 0
        client.predict(image["id"], [], 0, api_name="/save_boxes")
    assert client.predict(image["id"], api_name="/get_boxes")["boxes"][0]["label"] == "bolt"

    job = client.predict(project, "sdpt", 5, api_name="/tune")["job_id"]
    deadline = time.time() + 180
    status = {}
    while time.time() < deadline:
        status = client.predict(job, api_name="/job_status")
        if status["status"] not in ("queued", "running"):
            break
        time.sleep(0.5)
    assert status["status"] == "done" and status["step"] == 5, status


def test_upload_handler_names_refused_files_and_keeps_the_rest(settings, database, ui_models, tmp_path):
    from app.context import AppContext
    from app.ui import labelling

    context = AppContext(database, settings, ui_models)
    from app import store
    with database.session() as session:
        project = store.create_project(session, "Uploads").id
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    good = tmp_path / "good.png"
    Image.new("RGB", (60, 60), (200, 10, 10)).save(good)
    first, message = labelling.upload_images(context, project, [str(broken), str(good), str(good)], "heldout")
    assert first is not None and "added 1 image as heldout" in message and "broken.jpg" in message
    assert message.startswith("**Problem:**")
    with database.session() as session:
        (record,) = store.list_images(session, project)
        assert record.split == "heldout" and record.original_name == "good.png"
    _, message = labelling.upload_images(context, None, [str(good)], "train")
    assert "choose a project" in message
