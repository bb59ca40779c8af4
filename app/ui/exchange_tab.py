"""Import / export tab: COCO zips in and out of a project, prompt files out and in (refused for another base)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from app import access, exchange, store
from app.context import AppContext
from app.ui.messages import from_error, ok, problem


def _download_dir(ctx: AppContext) -> Path:
    directory = ctx.settings.data_dir / "downloads"
    directory.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=directory))


def _hand_over(ctx: AppContext, path: Path) -> str:
    """The page gets a copy only this user may fetch (deleted when it expires); the scratch folder goes at once."""
    try:
        return ctx.served(path)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def export_project(ctx: AppContext, project_id: int | None, include_suggestions: bool = False
                   ) -> tuple[str | None, str]:
    if project_id is None:
        return None, problem("choose a project to export")
    try:
        access.check(ctx, "read", project_id=project_id)
        path = exchange.export_project_zip(ctx.database, ctx.settings, project_id, _download_dir(ctx),
                                           include_suggestions=bool(include_suggestions))
        flagged = " and the model's suggestions (flagged \"suggested\": true)" if include_suggestions else ""
        return _hand_over(ctx, path), ok(f"exported the project as COCO JSON with its images{flagged}: {path.name}")
    except Exception as error:
        return None, from_error(error)


def import_project(ctx: AppContext, project_id: int | None, upload: str | None) -> str:
    if project_id is None:
        return problem("choose (or create) the project to import into")
    if not upload:
        return problem("choose a .zip with annotations.json (COCO) and its images")
    try:
        access.check(ctx, "write", project_id=project_id)
        ctx.check_upload(upload)
        counts = exchange.import_zip(ctx.database, ctx.settings, project_id, Path(upload))
        return ok(f"imported {counts['images']} images, {counts['boxes']} boxes, {counts['classes_added']} new "
                  f"classes ({counts['skipped_duplicates']} images were already in the project)")
    except Exception as error:
        return from_error(error)


def export_prompt(ctx: AppContext, prompt_id: int | None) -> tuple[str | None, str]:
    if prompt_id is None:
        return None, problem("choose a prompt to download (tune one first)")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "read", prompt_id=prompt_id)
            record = session.get(store.PromptRecord, prompt_id)
            if record is None:
                return None, problem("that prompt no longer exists; reload the page")
            path = exchange.export_prompt_zip(ctx.settings, record, _download_dir(ctx))
        return _hand_over(ctx, path), ok(f"prompt file ready: {path.name} (use it with base model {record.base_model})")
    except Exception as error:
        return None, from_error(error)


def import_prompt(ctx: AppContext, project_id: int | None, upload: str | None) -> str:
    if project_id is None:
        return problem("choose the project to load the prompt into")
    if not upload:
        return problem("choose a prompt .zip (downloaded from this app)")
    try:
        access.check(ctx, "write", project_id=project_id)
        ctx.check_upload(upload)
        with ctx.models.lock:  # loading proves the prompt fits the model the app serves
            record = exchange.import_prompt_zip(ctx.database, ctx.settings, project_id, Path(upload),
                                                ctx.models.detector)
        return ok(f"loaded a {record.method} prompt ({record.trainable_parameters:,} parameters); it is now the "
                  "newest prompt of this project")
    except Exception as error:
        return from_error(error)
