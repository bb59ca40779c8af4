"""The app's figures: seconds from pressing "Tune" to the first progress figure on screen (a real browser), p95
latency of saving a box with 8 clients at once while a tuning job runs (gradio_client, loopback), and the
serving process's peak memory. Run by `benchmarks.performance`; alone:

    python -m benchmarks.app_performance [--quick] [--model DIR]
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image, ImageDraw

from benchmarks.timing import peak_rss_bytes

logger = logging.getLogger("benchmarks.app_performance")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def seed_project(context, root: Path, images: int) -> tuple[int, list[int]]:
    from app import store
    from app.image_files import store_upload

    with context.database.session() as session:
        project = store.create_project(session, "Benchmark").id
        store.add_class(session, project, "red square")
        ids = []
        for k in range(images):
            path = root / f"img{k}.png"
            picture = Image.new("RGB", (160, 128), (235, 235, 235))
            ImageDraw.Draw(picture).rectangle([20 + k, 20, 70 + k, 70], fill=(210, 30, 30))
            picture.save(path)
            record, _ = store.add_image(session, project, store_upload(path, context.settings.images_dir, 2**22))
            store.save_boxes(session, record.id, [{"label": "red square", "xmin": 20 + k, "ymin": 20,
                                                   "xmax": 70 + k, "ymax": 70}])
            ids.append(record.id)
    return project, ids


def tune_to_progress(url: str, steps: int) -> tuple[float, float]:
    """(s to the first running-job figure, s to the first loss figure) after clicking Tune, in Chromium."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("() => document.querySelector('#project input')?.value === 'Benchmark'")
        page.get_by_role("tab", name="3 · Tune").click()
        page.locator("#steps input").fill(str(steps))
        start = time.perf_counter()
        page.locator("#tune").click()
        # a job is shown as "queued" first; the first progress figure is its running (or finished) state
        page.wait_for_function("() => /(running|done) · step/.test(document.querySelector('#job-progress').innerText)",
                               timeout=120_000)
        first_figure = time.perf_counter() - start
        page.wait_for_function("() => /loss \\d/.test(document.querySelector('#job-progress').innerText)",
                               timeout=600_000)
        first_loss = time.perf_counter() - start
        browser.close()
    return first_figure, first_loss


def _client_threads(url: str, image_ids: list[int], clients: int, seconds: float, period: float) -> list[float]:
    """Every `period` seconds all clients save a box at the same moment, each on its own image, through the app's
    HTTP API (`POST /gradio_api/run/save_boxes`, one keep-alive connection per client); returns latencies (s).

    Each client sends a session hash, as the browser and gradio_client do: without one, Gradio builds a fresh
    session state (the config of every block of the UI) for each call, which was 70% of a save's server time in a
    py-spy profile. A person saves every few seconds at most; all 8 at once, every second, is a heavy labelling
    session."""
    import httpx

    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client_loop(index: int) -> None:
        image_id = image_ids[index % len(image_ids)]
        with httpx.Client(base_url=url, timeout=60) as client:
            barrier.wait()
            begin = time.perf_counter()
            k = 0
            while k * period < seconds:
                # all clients fire together once per period: bursts of `clients` simultaneous saves
                time.sleep(max(0.0, begin + k * period - time.perf_counter()))
                box = {"label": "red square", "xmin": 10 + k % 20, "ymin": 12, "xmax": 60 + k % 20, "ymax": 64}
                start = time.perf_counter()
                response = client.post("gradio_api/run/save_boxes",
                                       json={"data": [image_id, [box], -1], "session_hash": f"client-{index}"})
                response.raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - start)
                k += 1

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def _gradio_client_latency(url: str, image_id: int, calls: int) -> float:
    """Median seconds of one save through gradio_client (queue join + event stream), for comparison."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    box = {"label": "red square", "xmin": 10, "ymin": 12, "xmax": 60, "ymax": 64}
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        client.predict(image_id, [box], -1, api_name="/save_boxes")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def box_saves_under_load(url: str, image_ids: list[int], clients: int, seconds: float, period: float = 1.0,
                         own_process: bool = True) -> list[float]:
    """The clients run in their own process, so they do not share the server's Python interpreter (the quick
    smoke run keeps them in this process to save a process start)."""
    import multiprocessing

    if not own_process:
        return _client_threads(url, image_ids, clients, seconds, period)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_client_threads, (url, image_ids, clients, seconds, period))


def measure(model: str, quick: bool) -> dict:
    from app import store
    from app.models_service import ModelService
    from app.server import build_app, launch_options
    from app.settings import Settings
    from sdpt.detector import load_detector
    from tests.app.conftest import free_port

    root = Path(tempfile.mkdtemp(prefix="sdpt-app-bench-"))
    settings = Settings(data_dir=root / "data", database_url=f"sqlite:///{root / 'data' / 'app.sqlite'}",
                        model=model, port=free_port(), worker=True)
    settings.ensure_dirs()
    models = ModelService(detector=load_detector(model), note=f"Model: {model}.")
    demo, context, worker = build_app(settings, models=models)
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(settings))
    url = f"http://127.0.0.1:{settings.port}/"
    try:
        project, image_ids = seed_project(context, root, images=8)
        worker.ready.wait(600)  # "after the model is loaded"
        first_figure, first_loss = tune_to_progress(url, steps=3 if quick else 20)
        with context.database.session() as session:  # a long job keeps the worker busy during the save test
            (done_or_running,) = store.list_jobs(session, project)
            long_job = store.enqueue_job(session, project, "sdpt", 100_000, models.model_id).id
        deadline = time.time() + 600
        while time.time() < deadline:
            with context.database.session() as session:
                if store.get_job(session, long_job).status == "running":
                    break
            time.sleep(0.2)
        latencies = box_saves_under_load(url, image_ids, clients=8, seconds=4 if quick else 60,
                                         own_process=not quick)
        client_s = _gradio_client_latency(url, image_ids[0], 5 if quick else 20)
        with context.database.session() as session:
            tuned_steps = store.get_job(session, long_job).step
            store.request_cancel(session, long_job)
    finally:
        worker.stop(60)
        demo.close()
    latencies.sort()
    return {"model": Path(model).name or model, "tune_to_progress_s": first_figure, "tune_to_first_loss_s": first_loss,
            "save_p50_ms": 1000 * statistics.median(latencies),
            "save_p95_ms": 1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
            "saves": len(latencies), "gradio_client_save_ms": 1000 * client_s, "steps_during_saves": tuned_steps, "peak_rss_mb": peak_rss_bytes() / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default=None)
    parser.add_argument("--json", action="store_true", help="print only the JSON figures")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    model = args.model or ("tiny-random" if args.quick else str(Path(__file__).resolve().parents[1] / "assets" /
                                                                   "sdpt-small"))
    figures = measure(model, args.quick)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
