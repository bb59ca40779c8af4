"""The tuning worker on a real SQLite queue and the tiny detector: a whole job, cancel, and a worker killed
mid-job (its own process, SIGKILL) whose job shows as interrupted and runs again to the end."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from app import store
from app.worker import Worker
from sdpt.prompt_io import load_prompt

BOTH_DATABASES = True  # every test here runs on SQLite and on PostgreSQL (conftest.py)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def labelled_project(database, settings, tmp_path):
    """A project with two labelled training images and one held-out image."""
    from app.image_files import store_upload

    with database.session() as session:
        project = store.create_project(session, "Shapes")
        store.add_class(session, project.id, "red square")
        store.add_class(session, project.id, "blue circle")
        for k in range(3):
            path = tmp_path / f"img{k}.png"
            image = Image.new("RGB", (96, 80), (240, 240, 240))
            draw = ImageDraw.Draw(image)
            draw.rectangle([10 + k, 10, 40 + k, 40], fill=(220, 20, 20))
            draw.ellipse([50, 30, 80, 60], fill=(20, 20, 220))
            image.save(path)
            record, _ = store.add_image(session, project.id, store_upload(path, settings.images_dir, 2**20),
                                        "train" if k < 2 else "heldout")
            store.save_boxes(session, record.id, [
                {"label": "red square", "xmin": 10 + k, "ymin": 10, "xmax": 40 + k, "ymax": 40},
                {"label": "blue circle", "xmin": 50, "ymin": 30, "xmax": 80, "ymax": 60}])
        return project.id


def test_a_job_runs_to_a_saved_prompt(database, settings, labelled_project, detector):
    with database.session() as session:
        job_id = store.enqueue_job(session, labelled_project, "sdpt", 6, "tiny-random").id
    worker = Worker(database, settings, detector_loader=lambda _model: detector)
    assert worker.run_once()
    with database.session() as session:
        job = store.get_job(session, job_id)
        assert job.status == "done", job.message
        assert job.step == 6 and len(job.losses) >= 2 and job.image_ids and len(job.image_ids) == 2
        prompt_row = store.latest_prompt(session, labelled_project, detector.fingerprint())
    prompt, config = load_prompt(settings.prompts_dir / prompt_row.relative_dir, detector)
    assert config["class_names"] == ["red square", "blue circle"] and prompt.trainable_parameters() > 0
    assert not worker.run_once()  # queue empty


def test_cancel_stops_a_running_job(database, settings, labelled_project, detector):
    with database.session() as session:
        job_id = store.enqueue_job(session, labelled_project, "sdpt", 5000, "tiny-random").id
    worker = Worker(database, settings, detector_loader=lambda _model: detector)
    runner = threading.Thread(target=worker.run_once)
    runner.start()
    deadline = time.time() + 120
    while time.time() < deadline:
        with database.session() as session:
            if store.get_job(session, job_id).step >= 2:
                store.request_cancel(session, job_id)
                break
        time.sleep(0.1)
    runner.join(120)
    with database.session() as session:
        job = store.get_job(session, job_id)
        assert job.status == "cancelled", job.message
        assert 2 <= job.step < 5000
        assert store.latest_prompt(session, labelled_project) is None


def test_killed_worker_leaves_an_interrupted_job_that_runs_again(database, settings, labelled_project, detector):
    with database.session() as session:
        job_id = store.enqueue_job(session, labelled_project, "sdpt", 5000, "tiny-random").id
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "app.worker", "--once", "--data-dir", str(settings.data_dir),
                                "--database-url", settings.database_url], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            with database.session() as session:
                job = store.get_job(session, job_id)
                if job.status == "running" and job.step >= 2:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the worker process never reached step 2")
    finally:
        process.send_signal(signal.SIGKILL)  # no clean-up code runs: like a crash or a killed Space
        process.wait(30)
    with database.session() as session:
        assert store.get_job(session, job_id).status == "running"  # nobody has noticed yet
    time.sleep(1.5)
    restarted = Worker(database, settings, detector_loader=lambda _model: detector, stale_after_s=1.0)
    assert restarted.recover_stale() == [job_id]
    with database.session() as session:
        job = store.get_job(session, job_id)
        assert job.status == "interrupted" and "interrupted at step" in job.message
        again = store.retry_job(session, job_id)
        again.steps = 4  # keep the re-run short
        again_id = again.id
    assert restarted.run_once()
    with database.session() as session:
        assert store.get_job(session, again_id).status == "done"


def test_chunked_job_for_time_limited_gpu_calls(database, settings, labelled_project, detector):
    """ZeroGPU-style: each call tunes for a bounded time; the job stays running between calls and ends done."""
    with database.session() as session:
        job_id = store.enqueue_job(session, labelled_project, "sdpt", 4, "tiny-random").id
    worker = Worker(database, settings, detector_loader=lambda _model: detector)
    calls = 0
    while True:
        assert worker.run_chunk(max_seconds=0.0)  # every call pauses after one step
        calls += 1
        with database.session() as session:
            job = store.get_job(session, job_id)
            if job.status != "running":
                break
            assert "next GPU call" in job.message and job.step == calls
    assert calls == 4 and job.status == "done", job.message
    assert not (settings.data_dir / "runs" / f"job-{job_id}").exists()
    assert not worker.run_chunk(max_seconds=0.0)


def test_two_worker_processes_share_a_queue_and_survive_a_kill(database, settings, labelled_project, tmp_path):
    """Two `python -m app.worker` processes on one queue; the one running the long job is SIGKILLed mid-job. The
    other finishes the rest, marks the dead worker's job interrupted, runs it again on request, and no job is ever
    claimed twice (each worker logs every claim)."""
    from collections import Counter

    with database.session() as session:
        long_job = store.enqueue_job(session, labelled_project, "sdpt", 5000, "tiny-random").id
        short_jobs = [store.enqueue_job(session, labelled_project, "sdpt", 3, "tiny-random").id for _ in range(3)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    logs = [tmp_path / f"worker{k}.log" for k in range(2)]
    workers = []
    for log in logs:
        with log.open("w") as output:
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "app.worker", "--data-dir", str(settings.data_dir), "--database-url",
                 settings.database_url, "--stale-after", "8"], cwd=ROOT, env=env, stdout=output,
                stderr=subprocess.STDOUT))
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            with database.session() as session:
                job = store.get_job(session, long_job)
                if job.status == "running" and job.step >= 2:
                    holder = job.worker_id
                    break
            time.sleep(0.2)
        else:
            pytest.fail("no worker reached step 2 of the long job: " + " | ".join(l.read_text()[-500:] for l in logs))
        (victim,) = [w for w in workers if f":{w.pid}:" in holder]
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        survivor = next(w for w in workers if w is not victim)

        deadline = time.time() + 240
        while time.time() < deadline:
            with database.session() as session:
                states = {j.id: j.status for j in store.list_jobs(session, labelled_project)}
            if states[long_job] == "interrupted" and all(states[j] == "done" for j in short_jobs):
                break
            assert survivor.poll() is None, logs[workers.index(survivor)].read_text()[-2000:]
            time.sleep(0.5)
        else:
            pytest.fail(f"jobs did not settle: {states}")
        with database.session() as session:
            again = store.retry_job(session, long_job)
            again.steps = 3
            again_id = again.id
        deadline = time.time() + 180
        while time.time() < deadline:
            with database.session() as session:
                if store.get_job(session, again_id).status not in ("queued", "running"):
                    break
            time.sleep(0.5)
        with database.session() as session:
            assert store.get_job(session, again_id).status == "done"
            prompts = [p.job_id for p in store.get_project(session, labelled_project).prompts]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(30)
    claims = Counter(int(line.rsplit(" ", 1)[1]) for log in logs for line in log.read_text().splitlines()
                     if " claimed job " in line)
    assert claims == Counter([long_job, *short_jobs, again_id]), claims  # each job claimed exactly once
    assert sorted(prompts) == sorted([*short_jobs, again_id])  # one prompt per finished job, none from the dead one
