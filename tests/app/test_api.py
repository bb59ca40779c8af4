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


def test_every_endpoint_says_what_its_payload_must_look_like(served_app, tmp_path):
    """Arguments of the wrong type get an answer naming the argument and the call's shape, not Gradio's generic
    'The upstream Gradio app has raised an exception'; nothing saved is lost."""
    from gradio_client import Client, handle_file

    url, _context, _worker = served_app
    client = Client(url, verbose=False)
    project = client.predict("Payloads", api_name="/create_project")["project_id"]
    client.predict(project, "bolt", api_name="/add_class")
    picture = tmp_path / "part.png"
    Image.new("RGB", (60, 40), (90, 90, 90)).save(picture)
    image = client.predict(project, handle_file(str(picture)), "train", api_name="/add_image")["image_id"]
    box = {"label": "bolt", "xmin": 5, "ymin": 5, "xmax": 30, "ymax": 30}
    client.predict(image, [box], 0, api_name="/save_boxes")

    cases = [
        ("/save_boxes", (image, "abc", 1), "boxes must be a list of boxes, not str 'abc'"),
        ("/save_boxes", (image, ["x"], 1), "box 1 must be an object with label, xmin, ymin, xmax, ymax"),
        ("/save_boxes", (image, [{"label": "bolt", "xmin": 1}], 1), "box 1 lacks ymin, xmax, ymax"),
        ("/save_boxes", ("first", [box], 1), "image_id must be a whole number, not str 'first'"),
        ("/save_boxes", (image, [box], "latest"), "revision must be a whole number"),
        ("/create_project", (42,), "name must be text, not int 42"),
        ("/share_project", (project, 7, "viewer"), "user_name must be text"),
        ("/add_class", ("Payloads", "nut"), "project_id must be a whole number, not str 'Payloads'"),
        ("/add_class", (project, ["nut"]), "name must be text, not list"),
        ("/add_image", (project, "part.png", "train"), "file must be an uploaded file"),
        ("/list_images", ([project],), "project_id must be a whole number, not list"),
        ("/get_boxes", (1.5,), "image_id must be a whole number, not float 1.5"),
        ("/tune", (project, "sdpt", "many"), "steps must be a whole number, not str 'many'"),
        ("/tune", (project, 3, 5), "method must be text, not int 3"),
        ("/job_status", ({"job": 1},), "job_id must be a whole number, not dict"),
        ("/cancel_job", (None,), "job_id must be a whole number, not NoneType None"),
    ]
    for endpoint, arguments, expected in cases:
        with pytest.raises(Exception) as refused:
            client.predict(*arguments, api_name=endpoint)
        message = str(refused.value)
        assert expected in message and f"{endpoint} takes (" in message, (endpoint, message)
        assert "upstream Gradio app has raised an exception" not in message
    assert client.predict(image, api_name="/get_boxes")["revision"] == 1  # the saved box is still there
