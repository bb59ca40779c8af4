"""Import and export on a real SQLite file: project zips round-trip every image, split, class and box; unsafe or
wrong zips and COCO files are refused with nothing written; prompt zips load only on the base they were tuned on."""
import json
import stat
import zipfile

import pytest
import torch
from PIL import Image

from app import store
from app.exchange import (ExchangeError, export_project_zip, export_prompt_zip, import_coco, import_prompt_zip,
                          import_zip)
from app.image_files import store_upload
from app.models import PromptRecord
from sdpt.prompt_io import load_prompt, read_prompt_config, save_prompt


def png_bytes(tmp_path, colour, size=(64, 48)) -> bytes:
    path = tmp_path / f"png-{colour[0]}-{colour[1]}-{colour[2]}.png"
    Image.new("RGB", size, colour).save(path)
    return path.read_bytes()


def write_zip(path, members: dict) -> str:
    """`members` maps a name (or a ZipInfo) to its bytes."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def coco(images=None, annotations=None, categories=None) -> str:
    return json.dumps({"images": images if images is not None else [{"id": 1, "file_name": "a.png"}],
                       "annotations": annotations or [],
                       "categories": categories or [{"id": 1, "name": "red cell"}]})


def new_project(database, name, classes=()):
    with database.session() as session:
        project = store.create_project(session, name)
        for label in classes:
            store.add_class(session, project.id, label)
        return project.id


def contents(database, project_id) -> dict:
    """{sha256: (split, original name, sorted boxes)} and the class names of a project."""
    with database.session() as session:
        images = {i.sha256: (i.split, i.original_name, sorted((b.label.name, b.x0, b.y0, b.x1, b.y1) for b in i.boxes))
                  for i in store.list_images(session, project_id)}
        return {"images": images, "classes": [c.name for c in store.list_classes(session, project_id)]}


@pytest.fixture
def labelled(database, settings, tmp_path):
    """A project with two classes, three images (one held out) and boxes at fractional coordinates."""
    project_id = new_project(database, "Blood", ["red cell", "Platelet"])
    boxes = {0: [("red cell", 1.25, 2.5, 20.75, 30.125), ("Platelet", 0, 0, 64, 48)],
             1: [("platelet", 10.333333, 11.1, 12.9, 40.0)], 2: []}
    with database.session() as session:
        for k, colour in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200)]):
            (tmp_path / f"cell {k}.png").write_bytes(png_bytes(tmp_path, colour))
            stored = store_upload(tmp_path / f"cell {k}.png", settings.images_dir, 2**20)
            record, _ = store.add_image(session, project_id, stored, "heldout" if k == 2 else "train")
            store.save_boxes(session, record.id, [dict(zip(("label", "xmin", "ymin", "xmax", "ymax"), b))
                                                  for b in boxes[k]])
    return project_id


def test_project_zip_round_trip_keeps_images_splits_classes_and_boxes(database, settings, labelled, tmp_path):
    path = export_project_zip(database, settings, labelled, tmp_path / "out")
    assert path.name == f"project-{labelled}.zip"
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("annotations.json"))
        assert all(archive.getinfo(i["file_name"]) for i in data["images"])
    assert [(c["id"], c["name"]) for c in data["categories"]] == [(1, "red cell"), (2, "Platelet")]
    assert all(c["color"].startswith("#") for c in data["categories"])
    assert sorted(i["split"] for i in data["images"]) == ["heldout", "train", "train"]
    assert all(a["iscrowd"] == 0 and a["area"] > 0 for a in data["annotations"]) and len(data["annotations"]) == 3

    fresh = new_project(database, "Blood copy")
    counts = import_zip(database, settings, fresh, path)
    assert counts == {"images": 3, "boxes": 3, "classes_added": 2, "skipped_duplicates": 0}
    before, after = contents(database, labelled), contents(database, fresh)
    assert after["classes"] == before["classes"]
    assert before["images"].keys() == after["images"].keys()
    for sha, (split, name, boxes) in before["images"].items():
        split_after, name_after, boxes_after = after["images"][sha]
        assert (split_after, name_after, len(boxes_after)) == (split, name, len(boxes))
        for old, new in zip(boxes, boxes_after):
            assert old[0] == new[0] and old[1:] == pytest.approx(new[1:], abs=1e-6)

    # Existing classes are reused by casefolded name; images already there are skipped with their boxes.
    partial = new_project(database, "Blood again", ["RED CELL"])
    assert import_zip(database, settings, partial, path)["classes_added"] == 1
    assert contents(database, partial)["classes"] == ["RED CELL", "Platelet"]
    again = import_zip(database, settings, partial, path)
    assert again == {"images": 0, "boxes": 0, "classes_added": 0, "skipped_duplicates": 3}
    assert not list(settings.data_dir.glob(".import-*"))  # the extraction folder is always removed


def test_import_coco_from_separate_uploads(database, settings, tmp_path):
    (tmp_path / "upload-a.png").write_bytes(png_bytes(tmp_path, (1, 2, 3)))
    (tmp_path / "ann.json").write_text(coco(annotations=[{"id": 7, "image_id": 1, "category_id": 1,
                                                          "bbox": [5, 5, 10, 10]}]))
    project_id = new_project(database, "Uploads")
    counts = import_coco(database, settings, project_id, tmp_path / "ann.json", {"a.png": tmp_path / "upload-a.png"})
    assert counts == {"images": 1, "boxes": 1, "classes_added": 1, "skipped_duplicates": 0}
    [(split, _, boxes)] = contents(database, project_id)["images"].values()
    assert (split, boxes) == ("train", [("red cell", 5.0, 5.0, 15.0, 15.0)])


def symlink_member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def bad_zips(tmp_path):
    """(name, members, limits, expected message) of zips that must be refused."""
    image = png_bytes(tmp_path, (9, 9, 9))
    box = {"id": 1, "image_id": 1, "category_id": 1}
    return {
        "climbs out": ({"annotations.json": coco(), "a.png": image, "../evil.png": image}, {}, r"climbs out"),
        "absolute path": ({"annotations.json": coco(), "/tmp/evil.png": image}, {}, "absolute path"),
        "symlink": ({"annotations.json": coco(), symlink_member("a.png"): "/etc/passwd"}, {}, "symbolic link"),
        "too big": ({"annotations.json": coco(), "a.png": image}, {"max_total_bytes": 100}, "unpacks to .* limit"),
        "too many": ({"annotations.json": coco(), "a.png": image}, {"max_files": 1}, "holds 2 entries"),
        "no json": ({"a.png": image}, {}, "needs annotations.json"),
        "two json": ({"x.json": coco(), "y.json": coco(), "a.png": image}, {}, "2 .json files"),
        "invalid json": ({"annotations.json": "{not json", "a.png": image}, {}, "not valid JSON"),
        "not coco": ({"annotations.json": "[1, 2]", "a.png": image}, {}, "not COCO JSON"),
        "missing image": ({"annotations.json": coco([{"id": 1, "file_name": "b.png"}])}, {}, "'b.png'.*not among"),
        "unknown image": ({"annotations.json": coco(annotations=[{**box, "image_id": 5, "bbox": [1, 1, 5, 5]}]),
                           "a.png": image}, {}, "image id 5"),
        "unknown category": ({"annotations.json": coco(annotations=[{**box, "category_id": 99, "bbox": [1, 1, 5, 5]}]),
                              "a.png": image}, {}, "category id 99"),
        "inverted box": ({"annotations.json": coco(annotations=[{**box, "bbox": [30, 30, -10, 5]}]), "a.png": image},
                         {}, "negative width"),
        "outside box": ({"annotations.json": coco(annotations=[{**box, "bbox": [50, 40, 100, 100]}]), "a.png": image},
                        {}, "outside the 64x48 image"),
        "bad split": ({"annotations.json": coco([{"id": 1, "file_name": "a.png", "split": "test"}]), "a.png": image},
                      {}, "split 'test'"),
        "not an image": ({"annotations.json": coco(), "a.png": b"hello"}, {}, "'a.png' is not an image"),
        # Refused by the store half-way through writing: the one transaction must roll the added classes back.
        "too many classes": ({"annotations.json": coco([], categories=[{"id": k, "name": f"c{k}"}
                                                                       for k in range(300)])}, {}, "at most 200"),
    }


@pytest.mark.parametrize("case", ["climbs out", "absolute path", "symlink", "too big", "too many", "no json",
                                  "two json", "invalid json", "not coco", "missing image", "unknown image",
                                  "unknown category", "inverted box", "outside box", "bad split", "not an image",
                                  "too many classes"])
def test_bad_project_zips_are_refused_and_nothing_is_written(database, settings, labelled, tmp_path, case):
    members, limits, match = bad_zips(tmp_path)[case]
    path = write_zip(tmp_path / "upload.zip", members)
    before = contents(database, labelled)
    with pytest.raises(ExchangeError, match=match):
        import_zip(database, settings, labelled, path, **limits)
    assert contents(database, labelled) == before
    assert not list(tmp_path.rglob("evil.png")) and not list(settings.data_dir.glob(".import-*"))


def test_a_file_that_is_not_a_zip_is_refused(database, settings, labelled, tmp_path):
    (tmp_path / "photo.zip").write_bytes(png_bytes(tmp_path, (1, 1, 1)))
    with pytest.raises(ExchangeError, match="'photo.zip' is not a zip file"):
        import_zip(database, settings, labelled, tmp_path / "photo.zip")


def saved_prompt(database, settings, detector, project_id, relative) -> PromptRecord:
    from sdpt.methods import build_method

    directory = save_prompt(build_method("sdpt", detector), settings.prompts_dir / relative, ["red cell"])
    config = read_prompt_config(directory)
    with database.session() as session:
        record = PromptRecord(project_id=project_id, method=config["method"], relative_dir=relative,
                              base_model=config["base_model"], base_fingerprint=config["base_fingerprint"],
                              class_names=config["class_names"], trainable_parameters=config["trainable_parameters"])
        session.add(record)
        session.flush()
        return record


def test_prompt_zip_round_trip(database, settings, detector, labelled, tmp_path):
    original = saved_prompt(database, settings, detector, labelled, f"{labelled}/job-1")
    path = export_prompt_zip(settings, original, tmp_path / "out")
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["prompt.safetensors", "prompt_config.json"]
    other = new_project(database, "Other")
    record = import_prompt_zip(database, settings, other, path, detector)
    assert record.relative_dir.startswith(f"{other}/imported-") and record.job_id is None
    assert (record.base_fingerprint, record.class_names) == (detector.fingerprint(), ["red cell"])
    assert record.trainable_parameters == original.trainable_parameters
    _, config = load_prompt(settings.prompts_dir / record.relative_dir, detector)
    assert config["method"] == "sdpt"
    with database.session() as session:
        assert store.latest_prompt(session, other).id == record.id


def test_prompt_from_another_base_model_is_refused(database, settings, detector, labelled, tmp_path):
    from sdpt.detector import load_detector

    changed = load_detector("tiny-random", device="cpu")
    with torch.no_grad():
        changed.fusion_layers[0].vision_proj.weight.add_(1.0)  # what Detector.fingerprint() hashes
    assert changed.fingerprint() != detector.fingerprint()
    path = export_prompt_zip(settings, saved_prompt(database, settings, changed, labelled, "x/y"), tmp_path)
    other = new_project(database, "Other")
    with pytest.raises(ExchangeError, match="tuned on base model 'tiny-random' .*fingerprint"):
        import_prompt_zip(database, settings, other, path, detector)
    with database.session() as session:
        assert store.latest_prompt(session, other) is None
    assert not (settings.prompts_dir / str(other)).exists()


@pytest.mark.parametrize("members, match", [
    ({"annotations.json": "{}"}, "not a prompt zip: it holds 'annotations.json'"),
    ({"prompt_config.json": "{}"}, "needs prompt_config.json and prompt.safetensors"),
    ({"prompt_config.json": "{}", "prompt.safetensors": b"x"}, "not a prompt config"),
    ({"../prompt_config.json": "{}"}, "climbs out"),
])
def test_zips_that_are_not_prompts_are_refused(database, settings, detector, labelled, tmp_path, members, match):
    path = write_zip(tmp_path / "prompt.zip", members)
    with pytest.raises(ExchangeError, match=match):
        import_prompt_zip(database, settings, labelled, path, detector)
    (tmp_path / "text.zip").write_text("not a zip")
    with pytest.raises(ExchangeError, match="not a zip file"):
        import_prompt_zip(database, settings, labelled, tmp_path / "text.zip", detector)
    with database.session() as session:
        assert store.latest_prompt(session, labelled) is None
