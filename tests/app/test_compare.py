"""Compare, explain and evaluate on the shipped small model: one-call comparison, CAMs that differ between the
models, and mAP that equals pycocotools run by hand on the exported COCO file."""
import contextlib
import io
import json
import random
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from app import exchange, store
from app.context import AppContext
from app.image_files import store_upload
from app.models import PromptRecord
from app.ui import compare, evaluation
from sdpt.synthetic.grounding import PRETRAIN, make_scene
from tests.prompt_helpers import open_up

ASSET = Path(__file__).resolve().parents[2] / "assets" / "sdpt-small"


@pytest.fixture(scope="module")
def small_models():
    from app.models_service import ModelService
    from sdpt.detector import load_detector

    return ModelService(detector=load_detector(str(ASSET), device="cpu"), note="")


@pytest.fixture
def project(settings, database, small_models, tmp_path):
    """(context, project id, prompt id, image ids): synthetic scenes, all boxes labelled, 4 of 5 held out."""
    from sdpt.methods import build_method
    from sdpt.prompt_io import read_prompt_config, save_prompt

    context = AppContext(database, settings, small_models)
    rng = random.Random(7)
    scenes = [make_scene(PRETRAIN, rng) for _ in range(5)]
    names = sorted({name for _, objects in scenes for _, name in objects})
    with database.session() as session:
        project_id = store.create_project(session, "Shapes").id
        for name in names:
            store.add_class(session, project_id, name)
        ids = []
        for k, (image, objects) in enumerate(scenes):
            path = tmp_path / f"scene{k}.png"
            image.save(path)
            record, _ = store.add_image(session, project_id, store_upload(path, settings.images_dir, 2**22),
                                        "train" if k == 0 else "heldout")
            store.save_boxes(session, record.id, [{"label": n, "xmin": b[0], "ymin": b[1], "xmax": b[2],
                                                   "ymax": b[3]} for b, n in objects])
            ids.append(record.id)
    from sdpt.routing import by_box_count

    prompt = build_method("sdpt", small_models.detector, seed=3)
    open_up(prompt, token_gain=4.0)  # as after tuning: open branch, moved prototypes (so the two models differ)
    prompt.routing = by_box_count(names, [1] * len(names))  # every class prompted, as a tune with boxes routes it
    directory = save_prompt(prompt, settings.prompts_dir / f"{project_id}" / "test", names)
    config = read_prompt_config(directory)
    with database.session() as session:
        row = PromptRecord(project_id=project_id, method="sdpt", relative_dir=f"{project_id}/test",
                           base_model=config["base_model"], base_fingerprint=config["base_fingerprint"],
                           class_names=names, trainable_parameters=config["trainable_parameters"])
        session.add(row)
        session.flush()
        prompt_id = row.id
    return context, project_id, prompt_id, ids


def test_compare_and_explain(project):
    context, project_id, prompt_id, ids = project
    assert [value for _, value in compare.prompt_choices(context, project_id)] == [prompt_id]
    zero, tuned, counts, message = compare.compare(context, project_id, prompt_id, ids[1], None, 0.05)
    assert "zero-shot and" in message, message
    zero, tuned = Image.open(zero), Image.open(tuned)  # served copies only this user may fetch
    # small images are drawn at a readable size (the example's are ~140 px)
    assert zero.size == tuned.size and max(zero.size) >= compare.SHOWN_PX and counts[-1][0] == "all"
    assert counts[-1][1] == sum(row[1] for row in counts[:-1])
    with context.database.session() as session:
        class_name = store.list_classes(session, project_id)[0].name
    zero_cam, tuned_cam, message = compare.explain(context, project_id, prompt_id, ids[1], None, class_name)
    assert "where each model looks" in message, message
    zero_cam, tuned_cam = Image.open(zero_cam), Image.open(tuned_cam)
    assert np.abs(np.asarray(zero_cam, dtype=float) - np.asarray(tuned_cam, dtype=float)).mean() > 0.1


def test_compare_refuses_what_it_cannot_use(project, tmp_path):
    context, project_id, prompt_id, ids = project
    assert "no prompt" in compare.compare(context, project_id, None, ids[1], None, 0.3)[3]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    message = compare.compare(context, project_id, prompt_id, None, str(broken), 0.3)[3]
    assert message.startswith("**Problem:**") and "cannot be read" in message


def test_evaluation_equals_pycocotools_on_the_exported_file(project, tmp_path):
    context, project_id, prompt_id, ids = project
    report = evaluation.evaluate_project(context, project_id, prompt_id)
    exported = exchange.export_project_zip(context.database, context.settings, project_id, tmp_path)
    with zipfile.ZipFile(exported) as archive:
        data = json.loads(archive.read("annotations.json"))
    heldout = {image["id"] for image in data["images"] if image["split"] == "heldout"}
    data["images"] = [image for image in data["images"] if image["id"] in heldout]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in heldout]
    for name in ("zero-shot", "prompted", "routed"):
        with contextlib.redirect_stdout(io.StringIO()):
            truth = COCO()
            truth.dataset = data
            truth.createIndex()
            by_hand = COCOeval(truth, truth.loadRes(report["results"][name]), "bbox")
            by_hand.evaluate()
            by_hand.accumulate()
            by_hand.summarize()
        assert report["metrics"][name]["map"] == pytest.approx(max(by_hand.stats[0], 0.0), abs=1e-12)
        assert report["metrics"][name]["map50"] == pytest.approx(max(by_hand.stats[1], 0.0), abs=1e-12)
    rows = evaluation.per_image_rows(context, report)
    assert {row[0] for row in rows} == set(ids[1:])
    assert [row[4] for row in rows] == sorted(row[4] for row in rows)  # worst first
    assert f"prompt {prompt_id}" in evaluation.summary_markdown(report)  # names the prompt it scored


def test_evaluation_with_no_prompt_picked_scores_the_newest(project):
    """A click on Evaluate before the tab's picker has filled in (prompt None) scores the project's newest prompt,
    the one the picker shows first, instead of saying there is none."""
    context, project_id, prompt_id, ids = project
    report = evaluation.evaluate_project(context, project_id, None)
    assert report["prompt_id"] == compare.prompt_choices(context, project_id)[0][1] == prompt_id
    assert f"prompt {prompt_id}" in evaluation.summary_markdown(report)


def test_evaluation_without_heldout_boxes_says_what_to_do(project):
    context, project_id, prompt_id, ids = project
    with context.database.session() as session:
        for image_id in ids[1:]:
            store.set_split(session, image_id, "train")
    with pytest.raises(store.StoreError, match="heldout"):
        evaluation.evaluate_project(context, project_id, prompt_id)


def test_routes_set_by_hand_are_honoured_by_compare_evaluate_and_preannotation(project, tmp_path):
    """Every class routed to zero-shot by hand (the Evaluate tab's override): the compare view's prompted side, the
    Evaluate tab's routed AP and pre-annotation's suggestions are the zero-shot model's, class by class."""
    from app import suggestions
    from app.preannotate import run_preannotate
    from sdpt.inference import detect

    context, project_id, prompt_id, ids = project
    with context.database.session() as session:
        names = [c.name for c in store.list_classes(session, project_id)]
    before = compare.compare(context, project_id, prompt_id, ids[1], None, 0.05)[2]
    assert any(row[1] != row[2] for row in before), before  # the prompt does act
    for name in names:
        evaluation.set_route(context, project_id, prompt_id, name, "zero-shot")
    counts = compare.compare(context, project_id, prompt_id, ids[1], None, 0.05)[2]
    assert all(row[1] == row[2] for row in counts), counts
    report = evaluation.evaluate_project(context, project_id, prompt_id)
    rows = evaluation.per_class_rows(report)
    assert all(row[1] == "zero-shot" and "set by hand" in row[7] for row in rows)
    assert report["metrics"]["routed"]["map"] == report["metrics"]["zero-shot"]["map"]
    assert report["metrics"]["prompted"]["map"] != report["metrics"]["zero-shot"]["map"]

    rng = random.Random(11)
    image, _objects = make_scene(PRETRAIN, rng)
    path = tmp_path / "unlabelled.png"
    image.save(path)
    with context.database.session() as session:
        unlabelled = store.add_image(session, project_id, store_upload(path, context.settings.images_dir, 2**22),
                                     "train")[0].id
        job = suggestions.enqueue_preannotate(session, project_id, prompt_id, 0.2, context.models.model_id,
                                              context.models.fingerprint()).id
    status, message = run_preannotate(context.database, context.settings, context.models.detector, job,
                                      lambda *_: False)
    assert status == "done", message
    with context.database.session() as session:
        found = sorted((s["label"], round(s["score"], 4)) for s in suggestions.suggestions_of(session, unlabelled))
    zero = detect(context.models.detector, [path], names, None, threshold=0.2 - 0.15)[0]
    expected = sorted((names[int(c)], round(float(v), 4)) for c, v in zip(zero.classes, zero.scores) if v >= 0.2)
    assert found == expected and found
