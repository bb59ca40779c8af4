"""Background jobs: a worker claims queued jobs from the database; it tunes (from scratch or warm from a prompt),
records progress, saves the prompt and scores it on the held-out images, or pre-annotates every unreviewed image.

Runs as the app's child process (`WorkerProcess`), as timed chunks inside ZeroGPU calls (`run_chunk`), or on its
own (`python -m app.worker --database-url URL --data-dir DIR`), so several machines can serve one queue; the database is the only link between the UI and the workers.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid

import torch
from sqlalchemy import select

from app import store
from app.db import Database
from app.heldout import heldout_dataset, route_and_score, validation_split
from app.suggestions import record_heldout
from app.settings import Settings, build_parser, resolve

logger = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
STALE_AFTER_S = 30.0  # a running job whose worker has been silent this long is taken as dead
PROGRESS_EVERY_S = 0.5


def training_set(session, job, images_dir):
    """The job's images and boxes as an sdpt FewShotSet (classes in the order the job recorded)."""
    from sdpt.data import FewShotSet, Sample

    index = {name.casefold(): k for k, name in enumerate(job.class_names)}
    samples = []
    for image_id in job.image_ids:
        record = session.get(store.ImageRecord, image_id)
        if record is None:
            continue  # deleted since the job was queued
        kept = [(b, index[b.label.name_key]) for b in record.boxes if b.label.name_key in index]
        boxes = torch.tensor([[b.x0, b.y0, b.x1, b.y1] for b, _ in kept], dtype=torch.float32).reshape(-1, 4)
        classes = torch.tensor([k for _, k in kept], dtype=torch.long)
        samples.append(Sample(store.image_file(images_dir, record), record.width, record.height, boxes, classes,
                              image_id=record.id))
    return FewShotSet(list(job.class_names), samples)


def done_message(result, final_loss, scores, validation_source: str, routing) -> str:
    """The finished job's one line: time, loss, the step kept, the held-out score the prompt is known by (the same
    number as the learning curve and the Evaluate tab) beside zero-shot's, and the classes answered zero-shot."""
    parts = [f"done in {result.seconds:.0f} s; final loss {final_loss:.3f}"]
    if result.best_step is not None:
        parts.append(f"kept the prompt of step {result.best_step} (best on {validation_source})")
    if scores is None:
        parts.append("prompt saved (no labelled held-out images to score it on)")
    else:
        parts.append(f"prompt saved; held-out mAP {scores['routed']['map']:.3f} (mAP@.5 {scores['routed']['map50']:.3f})"
                     f", zero-shot {scores['zero-shot']['map']:.3f}")
    if routing is not None:
        zero = [name for name, entry in routing.classes.items() if entry.route != "prompt"]
        if zero:
            parts.append(f"{len(zero)} of {len(routing.classes)} classes answered by the zero-shot model")
    return "; ".join(parts)


class Worker:
    """Claims and runs jobs one at a time; `detector_loader(model_id)` gives the (frozen) detector for a job."""

    def __init__(self, database: Database, settings: Settings, detector_loader=None, worker_id: str | None = None,
                 poll_s: float = 1.0, stale_after_s: float = STALE_AFTER_S, stop_event=None, ready_event=None,
                 parent_pid: int | None = None, compare_zero_shot: bool = False):
        self.database = database
        # pre-annotating with a prompt, also run zero-shot to flag disagreements for the review queue; off by default
        # because it costs a second pass over the prompt-dependent layers (BENCHMARKS.md: the loop's figures)
        self.compare_zero_shot = compare_zero_shot
        self.stale_after_s = stale_after_s
        self.settings = settings
        self.poll_s = poll_s
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._detectors: dict[str, object] = {}
        self._loader = detector_loader
        self._stop = stop_event or threading.Event()
        self.ready = ready_event or threading.Event()  # set once the preloaded model is in memory
        self.parent_pid = parent_pid  # in a child process of the app: exit when the app is gone

    # ---- lifecycle ----
    def run_forever(self, preload: str | None = None) -> None:
        if preload:
            try:
                self._detector(preload)
            except Exception:  # the job that needs it will fail with the reason
                logger.exception("could not preload %s", preload)
        self.ready.set()
        while not self._stop.is_set() and not self._orphaned():
            self.recover_stale()
            if not self.run_once():
                self._stop.wait(self.poll_s)

    def recover_stale(self) -> list[int]:
        """Jobs left 'running' by a worker that died (this app before a restart, or another machine)."""
        with self.database.session() as session:
            recovered = store.mark_stale_jobs_interrupted(session, self.stale_after_s)
        if recovered:
            logger.info("marked jobs %s as interrupted: their worker stopped sending heartbeats", recovered)
        return recovered

    def run_chunk(self, max_seconds: float) -> bool:
        """Run at most about `max_seconds` of tuning: the job this worker paused earlier, else a queued one.

        For time-limited GPU calls (ZeroGPU): between chunks the job stays 'running' and its optimizer state waits on
        disk; the chunks together give the same prompt as one run. False when there was nothing to do.
        """
        with self.database.session() as session:
            job_id = session.scalar(select(store.TuningJob.id).where(store.TuningJob.status == "running",
                                                                     store.TuningJob.worker_id == self.worker_id)
                                    .order_by(store.TuningJob.id).limit(1))
            if job_id is None:
                job = store.claim_job(session, self.worker_id)
                if job is None:
                    return False
                job_id = job.id
        self._run(job_id, max_seconds=max_seconds)
        return True

    def run_once(self) -> bool:
        """Claim and run one job; False when the queue was empty."""
        with self.database.session() as session:
            job = store.claim_job(session, self.worker_id)
            if job is None:
                return False
            job_id = job.id
        logger.info("worker %s claimed job %d", self.worker_id, job_id)
        self._run(job_id)
        return True

    # ---- one job ----
    def _detector(self, model_id: str):
        if model_id not in self._detectors:
            if self._loader is not None:
                detector = self._loader(model_id)
            else:
                from sdpt.detector import load_detector
                detector = load_detector(model_id)
            self._detectors = {model_id: detector}  # keep one model in memory at a time
        return self._detectors[model_id]

    def _run(self, job_id: int, max_seconds: float | None = None) -> None:
        from sdpt.config import TrainConfig
        from sdpt.methods import build_method
        from sdpt.prompt_io import (STATE_META, load_prompt, load_tune_state, read_prompt_config, save_prompt,
                                    save_tune_state)
        from sdpt.train import tune

        beat_stop = threading.Event()
        cancel = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job_id, beat_stop, cancel), daemon=True)
        beat.start()
        try:
            with self.database.session() as session:
                job = store.get_job(session, job_id)
                kind, model_id = job.kind, job.model_id
            if kind == "preannotate":
                self._preannotate(job_id, model_id, cancel)
                return
            with self.database.session() as session:
                job = store.get_job(session, job_id)
                dataset = training_set(session, job, self.settings.images_dir)
                heldout = heldout_dataset(session, self.settings.images_dir, job.project_id)
                method, steps, model_id, project_id = job.method, job.steps, job.model_id, job.project_id
                warm_dir = None
                if job.prompt_id is not None:
                    start = session.get(store.PromptRecord, job.prompt_id)
                    if start is None:
                        raise store.StoreError(f"prompt {job.prompt_id} to continue from was deleted")
                    warm_dir = self.settings.prompts_dir / start.relative_dir
            detector = self._detector(model_id)
            # a warm retune starts from the saved prompt's weights, with a fresh optimizer and schedule
            prompt = load_prompt(warm_dir, detector)[0] if warm_dir is not None else build_method(method, detector)
            config = TrainConfig(steps=steps)
            # early stopping needs whole runs: chunked (ZeroGPU) runs train the full schedule
            train_set, validation, validation_source = (validation_split(dataset, heldout) if max_seconds is None
                                                        else (dataset, None, "none (run in chunks)"))
            last = [0.0]

            def on_step(info):
                now = time.monotonic()
                if info.step in (1, info.total_steps) or now - last[0] >= PROGRESS_EVERY_S:
                    last[0] = now
                    with self.database.session() as session:
                        if store.record_progress(session, job_id, info.step, info.loss, info.eta_s,
                                                 f"tuning: step {info.step}/{info.total_steps}"):
                            cancel.set()

            paused_dir = self.settings.data_dir / "runs" / f"job-{job_id}"
            state = load_tune_state(paused_dir, prompt) if (paused_dir / STATE_META).is_file() else None
            if state is None:
                with self.database.session() as session:
                    store.record_progress(session, job_id, 0, None, None,
                                          f"tuning {method} on {len(dataset)} images, {dataset.num_boxes()} boxes")
            result = tune(detector, train_set, prompt, config, on_step=on_step, should_stop=cancel.is_set,
                          resume=state, max_seconds=max_seconds, validation=validation)
            if result.state is not None and not result.cancelled:
                save_tune_state(paused_dir, prompt, result.state)
                with self.database.session() as session:
                    store.record_progress(session, job_id, result.state.step, result.history[-1].loss,
                                          result.history[-1].eta_s,
                                          f"step {result.state.step}/{steps}; goes on in the next GPU call")
                return
            shutil.rmtree(paused_dir, ignore_errors=True)
            if result.cancelled:
                with self.database.session() as session:
                    store.finish_job(session, job_id, "cancelled",
                                     f"cancelled at step {len(result.history)}/{steps}; no prompt saved")
                return
            with self.database.session() as session:
                store.record_progress(session, job_id, steps, result.history[-1].loss, 0.0,
                                      "choosing each class's model on the held-out images")
            scores = self._route_and_score(detector, result.prompt, heldout)
            relative = f"{project_id}/job-{job_id}"
            directory = save_prompt(result.prompt, self.settings.prompts_dir / relative, dataset.class_names,
                                    extra={"job_id": job_id, "steps": steps, "kept_step": result.best_step,
                                           "validation": validation_source})
            final_loss = result.history[-1].loss if result.history else None
            with self.database.session() as session:
                job = store.get_job(session, job_id)
                prompt_id = store.add_prompt(session, job, relative, read_prompt_config(directory), final_loss).id
                record_heldout(session, prompt_id, dataset.num_boxes(), scores)
                store.finish_job(session, job_id, "done", done_message(result, final_loss, scores, validation_source,
                                                                       result.prompt.routing))
        except Exception as error:  # a failed job must never take the worker down
            logger.exception("job %d failed", job_id)
            with self.database.session() as session:
                store.finish_job(session, job_id, "failed", f"failed: {error}")
        finally:
            beat_stop.set()

    def _route_and_score(self, detector, prompt, heldout) -> dict | None:
        """Routes chosen on, and scores on, the held-out images; a failure here never fails the tune (the prompt
        keeps the routes its training boxes gave it)."""
        try:
            return route_and_score(detector, prompt, heldout)
        except Exception:
            logger.exception("held-out routing and scoring failed")
            return None

    def _preannotate(self, job_id: int, model_id: str, cancel: threading.Event) -> None:
        from app.preannotate import run_preannotate

        detector = self._detector(model_id)

        def progress(done: int, total: int, message: str) -> bool:
            with self.database.session() as session:
                if store.record_progress(session, job_id, done, None, None, message):
                    cancel.set()
            return cancel.is_set()

        status, message = run_preannotate(self.database, self.settings, detector, job_id, progress,
                                          compare_zero_shot=self.compare_zero_shot)
        with self.database.session() as session:
            store.finish_job(session, job_id, status, message)

    def _orphaned(self) -> bool:
        return self.parent_pid is not None and os.getppid() != self.parent_pid

    def _heartbeat(self, job_id: int, stop: threading.Event, cancel: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            if self._orphaned():
                # The app died: stop at once, without a last word, so the job goes stale and shows as interrupted.
                logger.error("the app process is gone; worker exits")
                os._exit(1)
            try:
                with self.database.session() as session:
                    if store.heartbeat(session, job_id):
                        cancel.set()
            except Exception:  # a busy database must not kill the heartbeat
                logger.warning("heartbeat for job %d failed", job_id, exc_info=True)


def _worker_process_main(settings: Settings, preload: str | None, stop_event, ready_event, parent_pid: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(name)s %(message)s")
    os.nice(10)  # the web server comes first: saving a box must not wait behind a tuning step
    worker = Worker(Database(settings.database_url, settings.admin_user), settings, stop_event=stop_event,
                    ready_event=ready_event, parent_pid=parent_pid)
    worker.run_forever(preload)


class WorkerProcess:
    """The app's own worker, in a child process: tuning never competes with the web server for Python's GIL,
    so saving boxes stays fast while a job runs. It exits when the app process is gone."""

    def __init__(self, settings: Settings):
        import multiprocessing

        self._context = multiprocessing.get_context("spawn")  # no fork: the parent holds server threads
        self._settings = settings
        self._stop = self._context.Event()
        self.ready = self._context.Event()
        self.process = None

    def start(self, preload: str | None = None) -> "WorkerProcess":
        self.process = self._context.Process(target=_worker_process_main, daemon=True, name="sdpt-worker",
                                             args=(self._settings, preload, self._stop, self.ready, os.getpid()))
        self.process.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self.process is not None:
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(10)


def main() -> None:
    parser = build_parser("Run SDPT tuning jobs from the app's database queue.")
    parser.add_argument("--once", action="store_true", help="run at most one job, then exit")
    parser.add_argument("--stale-after", type=float, default=STALE_AFTER_S,
                        help=f"seconds without a heartbeat after which another worker's running job counts as "
                             f"interrupted (default {STALE_AFTER_S:.0f}; keep it well above {HEARTBEAT_S:.0f})")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = resolve(args)
    worker = Worker(Database(settings.database_url, settings.admin_user), settings, stale_after_s=args.stale_after)
    if args.once:
        worker.recover_stale()
        worker.run_once()
        return
    try:
        worker.run_forever()
    except KeyboardInterrupt:
        logger.info("worker stopped")


if __name__ == "__main__":
    main()
