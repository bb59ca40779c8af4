"""The labelling loop, played by a simulated reviewer on the example project: 3 rounds of tune -> pre-annotate all ->
review -> warm retune, with the app's own store and worker (real SQLite, the shipped small model).

In review the reviewer takes the images in the app's queue order (a third of the unlabelled images per round),
accepts each suggestion that matches a ground-truth box of its class at IoU >= 0.5 (each ground-truth box once),
rejects the others and draws the ground-truth boxes nobody suggested. Per round: held-out mAP of the prompt that
made the suggestions, the share of suggestions accepted unchanged, and boxes drawn against boxes only clicked.
Runs for the app's default method (suggestions from the latest prompt, warm retuned each round) and for zero-shot
suggestions (no tuning at all: the held-out column is the zero-shot model's).

Since each tune keeps its best step and routes each class on the project's held-out images, the held-out column is
a little optimistic; every prompt (as routed) and the zero-shot model are also scored on 60 fresh images of the same
kind that nothing chose anything on (the "fresh" columns).

    python -m benchmarks.labelling_loop [--model assets/sdpt-small] [--steps 100] [--rounds 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
from pathlib import Path

logger = logging.getLogger("benchmarks.labelling_loop")
MATCH_IOU = 0.5


def _iou(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def review_as_ground_truth(session, image_id: int, truth: list) -> dict:
    """Accept matching suggestions, reject the rest, draw the missed boxes; returns the clicks and drawings."""
    from app import store, suggestions

    pending = suggestions.suggestions_of(session, image_id)
    unmatched = list(truth)
    accept, reject = [], []
    for item in pending:  # highest score first, as the editor lists them
        box = (item["xmin"], item["ymin"], item["xmax"], item["ymax"])
        match = max(((k, _iou(box, gt)) for k, (gt, name) in enumerate(unmatched) if name == item["label"]),
                    key=lambda pair: pair[1], default=None)
        if match is not None and match[1] >= MATCH_IOU:
            accept.append(item["id"])
            unmatched.pop(match[0])
        else:
            reject.append(item["id"])
    suggestions.review(session, image_id, accept, reject, None)
    record = store.get_image(session, image_id)
    drawn = [{"label": name, "xmin": b[0], "ymin": b[1], "xmax": b[2], "ymax": b[3]} for b, name in unmatched]
    store.save_boxes(session, image_id, store.boxes_of(record) + drawn)  # also marks the image reviewed
    return {"suggested": len(pending), "accepted": len(accept), "rejected": len(reject), "drawn": len(drawn)}


def run_loop(model: str, detector, mode: str, steps: int, rounds: int, threshold: float) -> list[dict]:
    from app import store, suggestions
    from app.db import Database
    from app.example import UNLABELLED, create_example_project, example_scenes
    from app.settings import DEFAULT_METHOD, Settings
    from app.worker import Worker

    root = Path(tempfile.mkdtemp(prefix="sdpt-loop-"))
    settings = Settings(data_dir=root, database_url=f"sqlite:///{root / 'loop.sqlite'}", model=model, worker=False)
    settings.ensure_dirs()
    database = Database(settings.database_url)
    worker = Worker(database, settings, detector_loader=lambda _model: detector)
    with database.session() as session:
        project = create_example_project(session, settings).id
        by_name = {i.original_name: i.id for i in store.list_images(session, project)}
    truth = {by_name[name]: objects for name, _split, labelled, _image, objects in example_scenes() if not labelled}
    per_round = math.ceil(UNLABELLED / max(rounds, 1))
    fresh = _fresh_images(root)

    def fresh_map(prompt_id) -> float:
        from sdpt.evaluate import evaluate
        from sdpt.prompt_io import load_prompt

        prompt = None
        if prompt_id is not None:
            with database.session() as session:
                relative = session.get(store.PromptRecord, prompt_id).relative_dir
            prompt = load_prompt(settings.prompts_dir / relative, detector)[0]
        return evaluate(detector, fresh, prompt)["map"]

    def tune(warm: bool) -> dict:
        if mode == "zero-shot":  # the baseline: nothing is tuned, suggestions and held-out mAP are zero-shot
            from app.preannotate import heldout_metrics

            metrics = heldout_metrics(database, settings, detector, project, None)
            with database.session() as session:
                boxes = sum(len(i.boxes) for i in store.list_images(session, project) if i.split == "train")
            return {"prompt_id": None, "map": metrics["map"], "map50": metrics["map50"], "confirmed_boxes": boxes,
                    "tune_s": 0.0, "fresh_map": fresh_map(None)}
        with database.session() as session:
            start = store.latest_prompt(session, project) if warm else None
            job = store.enqueue_job(session, project, DEFAULT_METHOD, steps, model,
                                    warm_from=start.id if start else None).id
        began = time.perf_counter()
        worker.run_once()
        with database.session() as session:
            status = store.get_job(session, job)
            assert status.status == "done", status.message
            prompt = store.latest_prompt(session, project)
            found = {"prompt_id": prompt.id, "map": prompt.heldout_map, "map50": prompt.heldout_map50,
                     "confirmed_boxes": prompt.confirmed_boxes, "tune_s": time.perf_counter() - began,
                     "zero_shot_map": prompt.zero_shot_map}
        found["fresh_map"] = fresh_map(found["prompt_id"])
        return found

    rows = []
    zero_fresh = fresh_map(None)
    tuned = tune(warm=False)
    for round_number in range(1, rounds + 1):
        with database.session() as session:
            job = suggestions.enqueue_preannotate(session, project, 0 if mode == "zero-shot" else -1, threshold,
                                                  model, detector.fingerprint()).id
        worker.run_once()
        totals = {"suggested": 0, "accepted": 0, "rejected": 0, "drawn": 0, "images": 0}
        with database.session() as session:
            assert store.get_job(session, job).status == "done"
        for _ in range(per_round):
            with database.session() as session:
                image_id = suggestions.next_to_review(session, project)
                if image_id is None:
                    break
                for key, value in review_as_ground_truth(session, image_id, truth[image_id]).items():
                    totals[key] += value
                totals["images"] += 1
        rows.append({"mode": mode, "round": round_number, "prompt_id": tuned["prompt_id"],
                     "confirmed_boxes": tuned["confirmed_boxes"], "heldout_map": tuned["map"],
                     "heldout_map50": tuned["map50"], "fresh_map": tuned["fresh_map"],
                     "zero_shot_fresh_map": zero_fresh, **totals,
                     "accepted_share": totals["accepted"] / totals["suggested"] if totals["suggested"] else 0.0})
        tuned = tune(warm=True)  # the warm retune closing the round
        logger.info("%s round %d: %s", mode, round_number, rows[-1])
    rows.append({"mode": mode, "round": "after", "prompt_id": tuned["prompt_id"],
                 "confirmed_boxes": tuned["confirmed_boxes"], "heldout_map": tuned["map"],
                 "heldout_map50": tuned["map50"], "fresh_map": tuned["fresh_map"], "zero_shot_fresh_map": zero_fresh,
                 "tune_s": tuned["tune_s"]})
    return rows


def _fresh_images(root: Path):
    """60 new images of the example's kind (another seed), labelled: scored, never used to choose anything."""
    from app.example import EXAMPLE_TASK
    from sdpt.data import load_coco
    from sdpt.synthetic.grounding import TASKS, write_coco

    return load_coco(write_coco(root / "fresh", TASKS[EXAMPLE_TASK], 60, 77_000), root / "fresh" / "images")


def table(rows: list[dict]) -> str:
    lines = ["| suggestions | round | confirmed boxes (tuned on) | held-out mAP | mAP@.5 | fresh images mAP "
             "(zero-shot) | images reviewed | suggested | accepted unchanged | rejected | drawn | drawn : only clicked |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fresh = f"{r['fresh_map']:.3f} ({r['zero_shot_fresh_map']:.3f})"
        if r["round"] == "after":
            closing = "no tuning" if r["mode"] == "zero-shot" else "warm retune"
            lines.append(f"| {r['mode']} | after the last round ({closing}) | {r['confirmed_boxes']} | "
                         f"{r['heldout_map']:.3f} | {r['heldout_map50']:.3f} | {fresh} | | | | | | |")
            continue
        lines.append(f"| {r['mode']} | {r['round']} | {r['confirmed_boxes']} | {r['heldout_map']:.3f} | "
                     f"{r['heldout_map50']:.3f} | {fresh} | {r['images']} | {r['suggested']} | {r['accepted']} "
                     f"({100 * r['accepted_share']:.0f}%) | {r['rejected']} | {r['drawn']} | "
                     f"{r['drawn']} : {r['accepted']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    import torch

    from app.settings import SHIPPED_MODEL
    from sdpt.detector import load_detector

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SHIPPED_MODEL))
    parser.add_argument("--steps", type=int, default=100, help="tuning steps per tune (first and warm)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.3)
    parser.add_argument("--modes", nargs="+", default=["latest prompt", "zero-shot"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    detector = load_detector(args.model)
    rows = []
    for mode in args.modes:
        rows += run_loop(args.model, detector, mode, args.steps, args.rounds, args.threshold)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
