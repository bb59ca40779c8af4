"""Putting the app together: settings -> database, UI model, optional in-process worker -> Gradio Blocks."""
from __future__ import annotations

import logging
import os

import gradio as gr
from starlette.middleware import Middleware

from app.auth import password_checker
from app.context import AppContext
from app.db import Database
from app.http_guard import HttpGuard
from app.models_service import ModelService
from app.settings import Settings
from app.ui.layout import build_ui
from app.ui.page_text import SHORTCUTS_JS
from app.gpu import TUNING_CHUNK_S, gpu, on_zero_gpu
from app.worker import Worker, WorkerProcess

logger = logging.getLogger(__name__)


def build_app(settings: Settings, models: ModelService | None = None):
    """(demo, context, worker or None). The worker is a child process with its own copy of the model, so tuning
    neither touches the detector the UI uses for pre-annotation nor slows the web server."""
    models = models or ModelService(settings.model)
    database = Database(settings.database_url, settings.admin_user)  # upgrades an older schema first
    logger.info("database: %s", database.schema_note)
    context = AppContext(database, settings, models)
    worker = None
    demo = build_ui(context)
    if settings.worker and on_zero_gpu():
        settings.stale_after_s = max(settings.stale_after_s, 600.0)
        # ZeroGPU lends the GPU only inside request handlers: a timer drives tuning in bounded chunks instead of a
        # background process; each chunk resumes the paused run exactly (sdpt.train.tune(resume=...)).
        chunk_worker = Worker(context.database, settings, worker_id=f"zerogpu:{os.getpid()}",
                              stale_after_s=600.0)

        @gpu(duration=int(TUNING_CHUNK_S) + 45)
        def tuning_chunk() -> None:
            chunk_worker.recover_stale()  # a run paused by an app that has since restarted cannot go on
            chunk_worker.run_chunk(TUNING_CHUNK_S)

        with demo:
            gr.Timer(5.0).tick(tuning_chunk, None, None, api_visibility="private", show_progress="hidden",
                               concurrency_limit=1, trigger_mode="once")
    elif settings.worker:
        worker = WorkerProcess(settings).start(preload=models.model_id)
    demo.queue(default_concurrency_limit=16)  # saving boxes must not wait behind other users' requests
    return demo, context, worker


def launch_options(settings: Settings, context: AppContext) -> dict:
    # The image store is not an allowed path: a stored image reaches the browser only as a copy that a handler
    # made after the access check, which only the user it was made for may fetch (app/served_files.py, checked on
    # every file URL by app/http_guard.py).
    guard = Middleware(HttpGuard, files=context.files, sign_in=settings.sign_in)
    options = {"server_name": settings.host, "server_port": settings.port, "allowed_paths": [],
               "max_file_size": f"{settings.max_upload_mb}mb", "head": SHORTCUTS_JS, "footer_links": ["api"],
               "app_kwargs": {"middleware": [guard]},
               # refusals that gradio itself makes before a handler runs (a file path nobody uploaded, a payload
               # with too few values) reach the client with their message instead of an empty error
               "show_error": True}
    if settings.sign_in == "password":
        options["auth"] = password_checker(settings.users)
        options["auth_message"] = "Sign in to see your projects."
    if settings.exposed_without_sign_in:
        logger.warning("serving %s without sign-in: anyone who reaches it can see and change every project; "
                       "start with --auth USER:PASSWORD, SDPT_AUTH or --users-file", settings.host)
    return options
