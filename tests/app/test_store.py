"""The store on a real SQLite file: projects, classes, images by content hash, boxes with validation and two-tab
conflicts, and the job queue's atomic claim."""
import threading

import pytest
from PIL import Image

from app import store
from app.db import Database
from app.image_files import ImageRejected, store_upload

BOTH_DATABASES = True  # every test here runs on SQLite and on PostgreSQL (conftest.py)


def png(path, size=(64, 48), colour=(10, 200, 30)):
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture
def project_id(database):
    with database.session() as session:
        project = store.create_project(session, "Cells")
        store.add_class(session, project.id, "red cell")
        return project.id


@pytest.fixture
def image_id(database, settings, project_id, tmp_path):
    stored = store_upload(png(tmp_path / "a.png"), settings.images_dir, 2**20)
    with database.session() as session:
        record, new = store.add_image(session, project_id, stored)
        assert new
        return record.id


def test_project_names_any_script_and_duplicates(database):
    with database.session() as session:
        store.create_project(session, "细胞 Zählung ✓")
    with pytest.raises(store.StoreError, match="already; pick another name"):
        with database.session() as session:
            store.create_project(session, " 细胞 zÄhlung ✓ ")
    for bad, match in (("", "empty"), ("   ", "empty"), ("...", "no letters"), ("x" * 101, "under 100")):
        with pytest.raises(store.StoreError, match=match):
            with database.session() as session:
                store.create_project(session, bad)
    with database.session() as session:
        assert [p.name for p in store.list_projects(session)] == ["细胞 Zählung ✓"]


def test_project_names_are_unique_per_owner_and_a_clash_tells_nothing_about_other_users(database):
    with database.session() as session:
        alices = store.create_project(session, "Cells", owner="alice").id
        bobs = store.create_project(session, "cells", owner="bob").id  # no hint that alice has one
    with pytest.raises(store.StoreError, match="you have a project called 'CELLS' already"):
        with database.session() as session:
            store.create_project(session, "CELLS", owner="bob")
    with database.session() as session:
        store.create_project(session, "Parts", owner="bob")
        with pytest.raises(store.StoreError, match="bob has a project called 'parts' already"):
            store.rename_project(session, bobs, "parts")
        store.rename_project(session, alices, "Parts")  # alice's rename does not clash with bob's name
        assert sorted((p.owner, p.name) for p in store.list_projects(session)) == [
            ("alice", "Parts"), ("bob", "Parts"), ("bob", "cells")]


def test_classes_rename_colour_delete(database, project_id):
    with database.session() as session:
        label = store.add_class(session, project_id, "platelet", "#00FF00")
        assert label.colour == "#00ff00"
        with pytest.raises(store.StoreError, match="exists already"):
            store.add_class(session, project_id, "Red Cell")
        with pytest.raises(store.StoreError, match="#rrggbb"):
            store.set_class_colour(session, label.id, "green")
        store.rename_class(session, label.id, "thrombocyte")
    with database.session() as session:
        assert [c.name for c in store.list_classes(session, project_id)] == ["red cell", "thrombocyte"]


def test_images_are_stored_once_by_content(database, settings, project_id, tmp_path):
    first = store_upload(png(tmp_path / "one.png"), settings.images_dir, 2**20)
    again = store_upload(png(tmp_path / "copy-of-one.png"), settings.images_dir, 2**20)
    assert first.sha256 == again.sha256
    with database.session() as session:
        _, new_first = store.add_image(session, project_id, first)
        _, new_again = store.add_image(session, project_id, again)
    assert (new_first, new_again) == (True, False)
    assert len(list(settings.images_dir.rglob("*.png"))) == 1


def test_bad_uploads_are_refused_with_the_file_name(settings, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageRejected, match="notes.png"):
        store_upload(tmp_path / "notes.png", settings.images_dir, 2**20)
    big = png(tmp_path / "big.png", size=(1200, 1200))
    with pytest.raises(ImageRejected, match="limit"):
        store_upload(big, settings.images_dir, 1000)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(big.read_bytes()[:200])
    with pytest.raises(ImageRejected, match="cut.png"):
        store_upload(truncated, settings.images_dir, 2**20)
    assert not list(settings.images_dir.rglob("*.png"))


def test_boxes_are_validated_and_nothing_is_lost_on_error(database, image_id):
    good = {"label": "red cell", "xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40}
    with database.session() as session:
        assert store.save_boxes(session, image_id, [good], expected_revision=0).revision == 1
    cases = [({**good, "xmin": 30, "xmax": 1}, "inverted"), ({**good, "xmax": 1.5}, "empty"),
             ({**good, "xmax": 500}, "outside"), ({**good, "label": "dog"}, "not in this project"),
             ({**good, "label": ""}, "no class")]
    for bad, message in cases:
        with pytest.raises(store.StoreError, match=message):
            with database.session() as session:
                store.save_boxes(session, image_id, [good, bad], expected_revision=1)
    with database.session() as session:
        record = store.get_image(session, image_id)
        assert store.boxes_of(record) == [{"label": "red cell", "xmin": 1.0, "ymin": 2.0, "xmax": 30.0,
                                           "ymax": 40.0}]
        assert record.revision == 1
        # a box a pixel past the edge is clipped, not refused
        store.save_boxes(session, image_id, [{**good, "xmin": -1, "xmax": 65}], expected_revision=1)
        assert store.boxes_of(record)[0]["xmin"] == 0 and store.boxes_of(record)[0]["xmax"] == 64


def test_two_tabs_saving_the_same_image(database, image_id):
    box = {"label": "red cell", "xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40}
    with database.session() as session:
        store.save_boxes(session, image_id, [box], expected_revision=0)  # tab A saves first
    with pytest.raises(store.StoreError, match="another tab"):
        with database.session() as session:
            store.save_boxes(session, image_id, [], expected_revision=0)  # tab B still holds revision 0
    with database.session() as session:
        assert len(store.get_image(session, image_id).boxes) == 1


def test_deleting_a_class_removes_its_boxes(database, project_id, image_id):
    with database.session() as session:
        store.save_boxes(session, image_id, [{"label": "red cell", "xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40}])
        (label,) = store.list_classes(session, project_id)
        assert store.delete_class(session, label.id) == ("red cell", 1)
    with database.session() as session:
        assert store.get_image(session, image_id).boxes == []


def test_tuning_needs_classes_and_boxes(database, project_id, image_id):
    with pytest.raises(store.StoreError, match="no training image has a box"):
        with database.session() as session:
            store.enqueue_job(session, project_id, "sdpt", 10, "tiny-random")
    with pytest.raises(store.StoreError, match="unknown method"):
        with database.session() as session:
            store.enqueue_job(session, project_id, "magic", 10, "tiny-random")
    with database.session() as session:
        empty = store.create_project(session, "Empty").id
    with pytest.raises(store.StoreError, match="no classes"):
        with database.session() as session:
            store.enqueue_job(session, empty, "sdpt", 10, "tiny-random")


def test_claiming_is_atomic_across_connections(settings, project_id, image_id, database):
    with database.session() as session:
        store.save_boxes(session, image_id, [{"label": "red cell", "xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40}])
        queued = {store.enqueue_job(session, project_id, "sdpt", 5, "tiny-random").id for _ in range(6)}
    claimed, lock = [], threading.Lock()

    def worker(name):
        own = Database(settings.database_url)  # its own engine, as a separate process would have
        while True:
            with own.session() as session:
                job = store.claim_job(session, name)
                if job is None:
                    return
                with lock:
                    claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{k}",)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(queued)  # every job claimed exactly once


def test_data_survives_a_new_connection(settings, project_id, image_id):
    with Database(settings.database_url).session() as session:  # as after an app restart
        (project,) = store.list_projects(session)
        assert project.id == project_id and [i.id for i in project.images] == [image_id]


def test_postgresql_claims_skip_rows_another_worker_holds(settings, project_id, image_id, database):
    """SELECT ... FOR UPDATE SKIP LOCKED: while one transaction holds the oldest queued job, a claim takes the
    next one at once instead of waiting."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("row locks are PostgreSQL's; SQLite claims by a conditional UPDATE (tested above)")
    import time

    from sqlalchemy import select

    with database.session() as session:
        store.save_boxes(session, image_id, [{"label": "red cell", "xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40}])
        first, second = (store.enqueue_job(session, project_id, "sdpt", 5, "tiny-random").id for _ in range(2))
    holder = Database(settings.database_url)
    with holder.session() as holding:
        holding.execute(select(store.TuningJob).where(store.TuningJob.id == first).with_for_update())
        start = time.perf_counter()
        with database.session() as session:
            claimed = store.claim_job(session, "w2")
            assert claimed.id == second and time.perf_counter() - start < 5
    with database.session() as session:
        assert store.claim_job(session, "w1").id == first  # free again once the holder's transaction ended
        assert store.claim_job(session, "w3") is None
    holder.engine.dispose()
