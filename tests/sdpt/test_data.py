"""COCO import and image reading: every kind of bad input gets an error that names the problem."""
import json

import pytest
import torch

from sdpt.data import DataError, load_coco, load_image, to_coco


def _write(tmp_path, data):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


def _coco(shapes):
    annotation, images = shapes
    return json.loads(annotation.read_text()), images


def test_reads_classes_boxes_and_sizes(shapes_set):
    assert shapes_set.class_names == ["red square", "blue circle"]
    assert len(shapes_set) == 4 and shapes_set.num_boxes() > 0
    for sample in shapes_set.samples:
        assert (sample.boxes[:, 2:] > sample.boxes[:, :2]).all()
        assert (sample.boxes[:, 2] <= sample.width).all() and (sample.boxes[:, 3] <= sample.height).all()


def test_export_round_trip_keeps_every_box(shapes_set, tmp_path, shapes):
    path = _write(tmp_path, to_coco(shapes_set))
    again = load_coco(path, shapes[1])
    assert again.class_names == shapes_set.class_names
    for a, b in zip(again.samples, shapes_set.samples):
        assert torch.allclose(a.boxes, b.boxes) and a.classes.tolist() == b.classes.tolist()


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(categories=[]), "no categories"),
    (lambda d: d["annotations"][0].update(image_id=999), "image id 999"),
    (lambda d: d["annotations"][0].update(category_id=77), "category id 77"),
    (lambda d: d["annotations"][0].update(bbox=[10, 10, 0, 5]), "zero or negative"),
    (lambda d: d["annotations"][0].update(bbox=[30, 30, -5, 8]), "zero or negative"),
    (lambda d: d["annotations"][0].update(bbox=[100, 100, 500, 500]), "outside"),
    (lambda d: d["annotations"][0].update(bbox="oops"), "four numbers"),
    (lambda d: d["images"][0].update(file_name="missing.jpg"), "does not exist"),
    (lambda d: d["images"][0].update(file_name="../../etc/passwd"), "outside the images directory"),
])
def test_bad_annotations_are_refused(shapes, tmp_path, change, message):
    data, images = _coco(shapes)
    change(data)
    with pytest.raises(DataError, match=message):
        load_coco(_write(tmp_path, data), images)


def test_not_json_and_not_coco(tmp_path, shapes):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_coco(broken, shapes[1])
    with pytest.raises(DataError, match="not COCO"):
        load_coco(_write(tmp_path, {"hello": 1}), shapes[1])


def test_corrupt_truncated_and_huge_images(tmp_path, shapes):
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"this is not an image")
    with pytest.raises(DataError, match="cannot be read"):
        load_image(fake)
    original = next(shapes[1].glob("*.jpg")).read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(original[: len(original) // 3])
    with pytest.raises(DataError, match="cannot be read"):
        load_image(truncated)
    with pytest.raises(DataError, match="limit is"):
        load_image(next(shapes[1].glob("*.jpg")), max_pixels=100)
