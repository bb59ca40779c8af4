"""Putting the app together: settings -> database, UI model, optional in-process worker -> Gradio Blocks."""
from __future__ import annotations

import logging

from app.context import AppContext
from app.db import Database
from app.models_service import ModelService
from app.settings import Settings
from app.ui.layout import SHORTCUTS_JS, build_ui
from app.worker import WorkerProcess

logger = logging.getLogger(__name__)


def build_app(settings: Settings, models: ModelService | None = None):
    """(demo, context, worker or None). The worker is a child process with its own copy of the model, so tuning
    neither touches the detector the UI uses for pre-annotation nor slows the web server."""
    models = models or ModelService(settings.model)
    context = AppContext(Database(settings.database_url), settings, models)
    worker = None
    if settings.worker:
        worker = WorkerProcess(settings).start(preload=models.model_id)
    demo = build_ui(context)
    demo.queue(default_concurrency_limit=16)  # saving boxes must not wait behind other users' requests
    return demo, context, worker


def launch_options(settings: Settings) -> dict:
    return {"server_name": settings.host, "server_port": settings.port,
            "allowed_paths": [str(settings.images_dir)], "max_file_size": f"{settings.max_upload_mb}mb",
            "head": SHORTCUTS_JS, "footer_links": ["api"]}
