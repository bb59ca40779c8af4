"""Files a page gets are readable only by the user they were made for (issue 25, finding 3): grants and their expiry
(app/served_files.py), and the check on every file URL over raw HTTP (app/http_guard.py) with three signed-in users,
for a stored image, a drawn comparison, a COCO export and an upload; a path of another user's upload passed back to
a handler is refused too."""
import dataclasses
import json
from contextlib import closing

import httpx
import pytest
from PIL import Image

from app import store
from app.access import User
from app.served_files import ServedFiles
from tests.app.conftest import TEAM


def test_a_copy_is_for_one_user_until_it_expires_then_it_is_deleted(tmp_path):
    now = [1000.0]
    guarded = tmp_path / "gradio"
    files = ServedFiles(guarded / "served", guarded=[guarded], ttl_s=60.0, clock=lambda: now[0])
    source = tmp_path / "store" / "a.png"
    source.parent.mkdir()
    Image.new("RGB", (8, 8)).save(source)

    alice_copy = files.issue(source, "alice")
    assert files.issue(source, "alice") == alice_copy  # the same copy while the grant lasts
    bob_copy = files.issue(source, "bob")
    assert bob_copy != alice_copy  # each user gets a folder of their own
    assert files.may_read(alice_copy, "alice") and not files.may_read(alice_copy, "bob")
    assert not files.may_read(alice_copy, None) and not files.may_read(alice_copy, "")
    assert files.may_read(source, "bob")  # outside the guarded folders: not this check's business
    stray = guarded / "abc" / "x.png"  # a file gradio cached that was never granted
    assert not files.may_read(stray, "alice")

    now[0] += 61.0
    assert not files.may_read(alice_copy, "alice")  # expired
    files.sweep_if_due()  # what every request does: the expired copies go
    assert not os_path_exists(alice_copy) and files.sweep() == 0
    assert not os_path_exists(alice_copy) and not os_path_exists(bob_copy)
    assert source.exists()  # the original is never touched


def test_a_drawn_image_and_an_upload_are_granted_to_their_user_only(tmp_path):
    guarded = tmp_path / "gradio"
    files = ServedFiles(guarded / "served", guarded=[guarded])
    drawn = files.issue_image(Image.new("RGB", (4, 4), (255, 0, 0)), "alice", "../../zero shot")
    assert drawn.endswith("zero_shot.png") and files.may_read(drawn, "alice") and not files.may_read(drawn, "bob")
    upload = guarded / "f00" / "mine.png"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"x")
    files.grant_upload(str(upload), "bob")
    files.check_upload(upload, "bob")
    with pytest.raises(store.StoreError, match="not one you uploaded"):
        files.check_upload(upload, "alice")


def os_path_exists(path: str) -> bool:
    from pathlib import Path
    return Path(path).exists()


def _signed_in(url: str, name: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    answer = client.post("/login", data={"username": name, "password": TEAM[name]})
    assert answer.status_code == 200, answer.text
    return client


@pytest.fixture
def alice_project(team_app, tmp_path):
    url, context, _worker = team_app
    picture = tmp_path / "private.png"
    Image.new("RGB", (160, 120), (30, 30, 200)).save(picture)
    from app.image_files import store_upload

    with context.database.session() as session:
        project = store.create_project(session, "Alice private", owner="alice").id
        store.add_class(session, project, "blue thing")
        stored = store_upload(str(picture), context.settings.images_dir, 2**24, original_name="private.png")
        image = store.add_image(session, project, stored, "train")[0].id
        store.save_boxes(session, image, [{"label": "blue thing", "xmin": 20, "ymin": 10, "xmax": 90, "ymax": 70}])
    return url, dataclasses.replace(context, user=User("alice")), project, image


def test_bob_cannot_fetch_alices_image_export_or_upload_by_url(alice_project, tmp_path):
    from app.ui import compare, exchange_tab, labelling

    url, alice_ctx, project, image = alice_project
    # what alice's page gets from the real handlers: the editor's image, an export zip, a drawn comparison
    shown, _revision, _split, _info = labelling.editor_value(alice_ctx, image)
    export, message = exchange_tab.export_project(alice_ctx, project)
    assert export, message
    drawn = alice_ctx.served_image(compare.draw_detections(Image.new("RGB", (50, 40)), _no_detections(), {}), "zero")
    with closing(_signed_in(url, "alice")) as alice, closing(_signed_in(url, "bob")) as bob, \
            httpx.Client(base_url=url, timeout=30) as anonymous:
        uploaded = alice.post("/gradio_api/upload", files={"files": ("mine.png", _png_bytes(), "image/png")})
        assert uploaded.status_code == 200, uploaded.text
        (upload_path,) = uploaded.json()
        for path in (shown["image"], export, drawn, upload_path):
            assert alice.get(f"/gradio_api/file={path}").status_code == 200, path
            refused = bob.get(f"/gradio_api/file={path}")
            assert refused.status_code == 404 and "made for another user" in refused.text, path
            assert anonymous.get(f"/gradio_api/file={path}").status_code in (401, 404), path
        # bob cannot hand alice's upload to a handler either (it would come back as his image)
        with bob.stream("POST", "/gradio_api/call/add_image",
                        json={"data": [1, {"path": upload_path, "meta": {"_type": "gradio.FileData"}}, "train"]}) \
                as call:
            event_id = json.loads(call.read())["event_id"]
        answer = bob.get(f"/gradio_api/call/add_image/{event_id}").text
        assert "error" in answer
    # bob's own ctx refuses alice's upload path in the Label tab's handler
    bob_ctx = dataclasses.replace(alice_ctx, user=User("bob"))
    with pytest.raises(store.StoreError, match="not one you uploaded"):
        bob_ctx.check_upload(upload_path)
    assert not (alice_ctx.settings.data_dir / "downloads").exists() or \
        not any((alice_ctx.settings.data_dir / "downloads").iterdir())  # the export's scratch copy is gone


def _png_bytes() -> bytes:
    import io
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def _no_detections():
    import torch

    from sdpt.detector.detections import Detections
    return Detections(torch.tensor([[5.0, 5.0, 30.0, 20.0]]), torch.tensor([0]), torch.tensor([0.9]), ["blue thing"])


def test_failed_sign_ins_from_one_address_are_limited_whatever_the_names(team_app):
    url, _context, _worker = team_app
    with httpx.Client(base_url=url, timeout=30) as client:
        for k in range(100):  # a different name each time: the per-name limit never trips
            assert client.post("/login", data={"username": f"guess{k}", "password": "x"}).status_code == 400
        refused = client.post("/login", data={"username": "alice", "password": TEAM["alice"]})
        assert refused.status_code == 429 and "try again in" in refused.json()["detail"]
        assert "this address" in refused.json()["detail"]
