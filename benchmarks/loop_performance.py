"""The labelling loop's speed figures: bulk pre-annotation (the worker's job, database writes included) against
batched `detect()` on the same images; box-save p95 with 8 clients while bulk pre-annotation runs; and how long the
next image of the review queue takes to show in a real browser (Chromium) after pressing R.

    python -m benchmarks.loop_performance [--model DIR] [--repeats 2] [--save-seconds 30] [--next 10] \
        [--parts bulk served]
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from benchmarks.app_performance import CHROMIUM_ARGS, box_saves_under_load

logger = logging.getLogger("benchmarks.loop_performance")


def _settings(root: Path, model: str, worker: bool):
    from app.settings import Settings
    from tests.app.conftest import free_port

    settings = Settings(data_dir=root, database_url=f"sqlite:///{root / 'app.sqlite'}", model=model,
                        port=free_port(), worker=worker)
    settings.ensure_dirs()
    return settings


def bulk_against_detect(model: str, detector, repeats: int) -> dict:
    """Median seconds over `repeats` (alternating, so load on the machine hits both alike) of batched detect() with
    the latest prompt, and of the pre-annotation job with the same prompt (without and with the zero-shot pass)."""
    from app import store, suggestions
    from app.db import Database
    from app.example import create_example_project
    from app.preannotate import BATCH_IMAGES, NEAR_THRESHOLD
    from app.settings import DEFAULT_METHOD
    from app.worker import Worker
    from sdpt.inference import detect
    from sdpt.prompt_io import load_prompt

    settings = _settings(Path(tempfile.mkdtemp(prefix="sdpt-bulk-")), model, worker=False)
    database = Database(settings.database_url)
    with database.session() as session:
        project = create_example_project(session, settings).id
        store.enqueue_job(session, project, DEFAULT_METHOD, 2, model)
    plain = Worker(database, settings, detector_loader=lambda _m: detector)
    comparing = Worker(database, settings, detector_loader=lambda _m: detector, compare_zero_shot=True)
    plain.run_once()  # a (short) tune: the prompt to pre-annotate with
    with database.session() as session:
        record = store.latest_prompt(session, project)
        names = [c.name for c in store.list_classes(session, project)]
        paths = [store.image_file(settings.images_dir, i) for i in store.list_images(session, project)
                 if i.split == "train" and not i.reviewed]
    prompt = load_prompt(settings.prompts_dir / record.relative_dir, detector)[0]
    times = {"detect": [], "job": [], "job_with_zero_shot": []}
    for _ in range(repeats):
        start = time.perf_counter()
        detect(detector, paths, names, prompt, threshold=0.3 - NEAR_THRESHOLD, batch_size=BATCH_IMAGES)
        times["detect"].append(time.perf_counter() - start)
        for key, worker in (("job", plain), ("job_with_zero_shot", comparing)):
            with database.session() as session:
                suggestions.enqueue_preannotate(session, project, -1, 0.3, model, detector.fingerprint())
            start = time.perf_counter()
            worker.run_once()
            times[key].append(time.perf_counter() - start)
    medians = {key: statistics.median(values) for key, values in times.items()}
    return {"images": len(paths), "detect_s": medians["detect"], "job_s": medians["job"],
            "job_with_zero_shot_s": medians["job_with_zero_shot"], "job_ratio": medians["job"] / medians["detect"],
            "job_with_zero_shot_ratio": medians["job_with_zero_shot"] / medians["detect"], "runs": times}


def _seed_save_project(context, root: Path) -> list[int]:
    """A project named to sort after the example, with 8 labelled images for the box-save clients."""
    from app import store
    from app.image_files import store_upload

    ids = []
    with context.database.session() as session:
        project = store.create_project(session, "Saves under load").id
        store.add_class(session, project, "red square")
        for k in range(8):
            path = root / f"save{k}.png"
            picture = Image.new("RGB", (160, 128), (235, 235, 235))
            ImageDraw.Draw(picture).rectangle([20 + k, 20, 70 + k, 70], fill=(210, 30, 30))
            picture.save(path)
            ids.append(store.add_image(session, project, store_upload(path, context.settings.images_dir, 2**22))[0].id)
    return ids


def _next_image_latencies(url: str, presses: int) -> list[float]:
    """Seconds from pressing R (after A accepted the open image's suggestions) to the next image's line in the page."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(url)
        page.wait_for_function("() => (document.querySelector('#project input')?.value || '').startsWith('Example')")
        page.get_by_role("tab", name="2b · Review").click()
        page.locator("#review-counts").get_by_text("with suggestions to review").wait_for(timeout=60_000)
        for _ in range(presses):
            before = page.locator("#review-info").inner_text()
            page.locator("#review-counts").click()
            start = time.perf_counter()
            page.keyboard.press("r")
            page.wait_for_function("(old) => { const t = document.querySelector('#review-info')?.innerText || '';"
                                   " return t !== old && t.includes('shapes-'); }", arg=before, timeout=30_000)
            times.append(time.perf_counter() - start)
            page.locator("#review-counts").click()
            page.keyboard.press("a")
            page.wait_for_function("() => (document.querySelector('#status')?.innerText || '').includes('accepted')"
                                   " || (document.querySelector('#status')?.innerText || '').includes('no suggestion')")
        browser.close()
    return times


def served_figures(model: str, save_seconds: float, presses: int) -> dict:
    from app import store, suggestions
    from app.example import create_example_project
    from app.models_service import ModelService
    from app.server import build_app, launch_options
    from sdpt.detector import load_detector

    root = Path(tempfile.mkdtemp(prefix="sdpt-loop-app-"))
    settings = _settings(root / "data", model, worker=True)
    models = ModelService(detector=load_detector(model), note=f"Model: {model}.")
    demo, context, worker = build_app(settings, models=models)
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(settings, context))
    url = f"http://127.0.0.1:{settings.port}/"
    try:
        with context.database.session() as session:
            examples = [create_example_project(session, settings).id for _ in range(3)]
        save_ids = _seed_save_project(context, root)
        worker.ready.wait(600)
        with context.database.session() as session:  # three bulk jobs back to back keep the worker pre-annotating
            jobs = [suggestions.enqueue_preannotate(session, p, 0, 0.3, models.model_id, models.fingerprint()).id
                    for p in examples]
        deadline = time.time() + 600
        while time.time() < deadline:
            with context.database.session() as session:
                if store.get_job(session, jobs[0]).status == "running":
                    break
            time.sleep(0.2)
        latencies = sorted(box_saves_under_load(url, save_ids, clients=8, seconds=save_seconds))
        with context.database.session() as session:
            running_after = [store.get_job(session, j).status for j in jobs]
        for job in jobs:
            while time.time() < deadline:
                with context.database.session() as session:
                    if store.get_job(session, job).status not in ("queued", "running"):
                        break
                time.sleep(0.5)
        next_times = _next_image_latencies(url, presses)
    finally:
        worker.stop(60)
        demo.close()
    return {"save_p50_ms": 1000 * statistics.median(latencies),
            "save_p95_ms": 1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
            "saves": len(latencies), "jobs_after_saves": running_after,
            "next_median_ms": 1000 * statistics.median(next_times), "next_max_ms": 1000 * max(next_times),
            "next_presses": len(next_times)}


def main(argv: list[str] | None = None) -> dict:
    import torch

    from app.settings import SHIPPED_MODEL
    from sdpt.detector import load_detector

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SHIPPED_MODEL))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--save-seconds", type=float, default=30.0)
    parser.add_argument("--next", type=int, default=10, help="review-queue presses to time")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", nargs="+", default=["bulk", "served"], choices=["bulk", "served"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    figures = {}
    if "bulk" in args.parts:
        figures["bulk"] = bulk_against_detect(args.model, load_detector(args.model), args.repeats)
    if "served" in args.parts:
        figures["served"] = served_figures(args.model, args.save_seconds, args.next)
    print(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
