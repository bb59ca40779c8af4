"""The app's figures: seconds from pressing "Tune" to the first progress figure on screen (a real browser), p95
latency of saving a box with 8 clients at once while a tuning job runs (gradio_client, loopback), and the
serving process's peak memory. Run by `benchmarks.performance`; alone:

    python -m benchmarks.app_performance [--quick] [--model DIR]

Teams (issue 18): the same box-save load on another database and with sign-in, and what the access check costs:

    python -m benchmarks.app_performance --saves-only --database-url postgresql+psycopg://... [--sign-in]
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


BENCH_USER, BENCH_PASSWORD = "bench", "bench-password"


def _client_threads(url: str, image_ids: list[int], clients: int, seconds: float, period: float,
                    sign_in: bool = False) -> list[float]:
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
            if sign_in:  # once per client, as a browser does; every save then carries the session cookie
                client.post("login", data={"username": BENCH_USER, "password": BENCH_PASSWORD}).raise_for_status()
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
                         own_process: bool = True, sign_in: bool = False) -> list[float]:
    """The clients run in their own process, so they do not share the server's Python interpreter (the quick
    smoke run keeps them in this process to save a process start)."""
    import multiprocessing

    if not own_process:
        return _client_threads(url, image_ids, clients, seconds, period, sign_in)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_client_threads, (url, image_ids, clients, seconds, period, sign_in))


def access_check_ms(context, image_ids: list[int], calls: int = 2000) -> float:
    """Mean ms of one access check as the UI handlers make it (its own session, the image's project, the role)."""
    import dataclasses

    from app import access

    as_user = dataclasses.replace(context, user=access.User(BENCH_USER))
    start = time.perf_counter()
    for k in range(calls):
        access.check(as_user, "write", image_id=image_ids[k % len(image_ids)])
    return 1000 * (time.perf_counter() - start) / calls


def measure(model: str, quick: bool, database_url: str | None = None, sign_in: bool = False,
            saves_only: bool = False, seconds: float | None = None) -> dict:
    from app import store
    from app.models_service import ModelService
    from app.server import build_app, launch_options
    from app.settings import Settings
    from sdpt.detector import load_detector
    from tests.app.conftest import free_port

    root = Path(tempfile.mkdtemp(prefix="sdpt-app-bench-"))
    database_url = database_url or f"sqlite:///{root / 'data' / 'app.sqlite'}"
    settings = Settings(data_dir=root / "data", database_url=database_url, model=model, port=free_port(), worker=True)
    if sign_in:
        from app.auth import parse_pairs

        settings.users = parse_pairs([f"{BENCH_USER}:{BENCH_PASSWORD}"], "benchmark")
    settings.ensure_dirs()
    models = ModelService(detector=load_detector(model), note=f"Model: {model}.")
    demo, context, worker = build_app(settings, models=models)
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(settings, context))
    url = f"http://127.0.0.1:{settings.port}/"
    try:
        project, image_ids = seed_project(context, root, images=8)
        if sign_in:
            with context.database.session() as session:
                store.get_project(session, project).owner = BENCH_USER
        worker.ready.wait(600)  # "after the model is loaded"
        first_figure, first_loss = (None, None) if saves_only else tune_to_progress(url, steps=3 if quick else 20)
        with context.database.session() as session:  # a long job keeps the worker busy during the save test
            long_job = store.enqueue_job(session, project, "sdpt", 100_000, models.model_id).id
        deadline = time.time() + 600
        while time.time() < deadline:
            with context.database.session() as session:
                if store.get_job(session, long_job).status == "running":
                    break
            time.sleep(0.2)
        latencies = box_saves_under_load(url, image_ids, clients=8, seconds=seconds or (4 if quick else 60),
                                         own_process=not quick, sign_in=sign_in)
        client_s = None if sign_in else _gradio_client_latency(url, image_ids[0], 5 if quick else 20)
        check_ms = access_check_ms(context, image_ids) if sign_in else None
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
            "saves": len(latencies), "gradio_client_save_ms": None if client_s is None else 1000 * client_s,
            "steps_during_saves": tuned_steps, "peak_rss_mb": peak_rss_bytes() / 2**20,
            "database": context.database.engine.dialect.name, "sign_in": sign_in, "access_check_ms": check_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default=None)
    parser.add_argument("--json", action="store_true", help="print only the JSON figures")
    parser.add_argument("--database-url", default=None, help="e.g. postgresql+psycopg://...; default SQLite")
    parser.add_argument("--sign-in", action="store_true", help="a signed-in user's clients, and the access check")
    parser.add_argument("--saves-only", action="store_true", help="skip the browser's tune-to-progress figure")
    parser.add_argument("--seconds", type=float, default=None, help="length of the box-save load (default 60)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    model = args.model or ("tiny-random" if args.quick else str(Path(__file__).resolve().parents[1] / "assets" /
                                                                   "sdpt-small"))
    figures = measure(model, args.quick, args.database_url, args.sign_in, args.saves_only, args.seconds)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
