"""Tune tab: queue a tuning job, follow its progress and loss, cancel it or run an interrupted one again."""
from __future__ import annotations

from app import access, method_cards, store
from app.context import AppContext
from app.settings import DEFAULT_METHOD
from app.ui.messages import from_error, ok, problem

def method_choices(host: str) -> list[tuple[str, str]]:
    """One line per method with the few-shot benchmark's figures on the loaded model's host (app/method_cards.py), the
    default first."""
    from sdpt.methods import METHODS

    return method_cards.method_choices(list(METHODS), DEFAULT_METHOD, method_cards.card_for(host))


def start_tuning(ctx: AppContext, project_id: int | None, method: str, steps: float | None,
                 warm: bool = False) -> tuple[int | None, str]:
    """Queue a tuning job; `warm` continues from the project's latest prompt (for this model) with all confirmed
    boxes."""
    if project_id is None:
        return None, problem("create or choose a project first")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "write", project_id=project_id)
            start = store.latest_prompt(session, project_id, ctx.models.fingerprint()) if warm else None
            if warm and start is None:
                return None, problem("there is no prompt to continue from yet; untick 'continue from the latest "
                                     "prompt' for the first tune")
            job = store.enqueue_job(session, project_id, method or DEFAULT_METHOD, int(steps or 0),
                                    ctx.models.model_id, warm_from=start.id if start else None)
            where = "" if ctx.settings.worker else " (waiting for a `python -m app.worker` process)"
            how = f", continuing from prompt {start.id}" if start else ""
            return job.id, ok(f"queued tuning job {job.id}: {job.method}, {job.steps} steps on "
                              f"{len(job.image_ids)} training images{how}{where}; keep labelling while it runs")
    except Exception as error:
        return None, from_error(error)


def job_choices(ctx: AppContext, project_id: int | None) -> list[tuple[str, int]]:
    if project_id is None:
        return []
    with ctx.database.session() as session:
        access.require(session, ctx.signed_in_user(), "read", project_id=project_id)
        return [(f"job {j.id} · {j.method} · {j.steps} {'images' if j.kind == 'preannotate' else 'steps'} · "
                 f"queued {j.created_at:%Y-%m-%d %H:%M}", j.id) for j in store.list_jobs(session, project_id)]


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def job_view(ctx: AppContext, job_id: int | None) -> tuple[str, list[list]]:
    """(progress markdown, [[step, loss], ...]) of a job."""
    if job_id is None:
        return "No tuning job yet. Label some training images, then press **Tune**.", []
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "read", job_id=job_id)
            job = store.current_job(session, job_id, ctx.settings.stale_after_s)
            loss = "-" if job.loss is None else f"{job.loss:.4f}"
            unit = "image" if job.kind == "preannotate" else "step"
            text = (f"**Job {job.id}** · {job.method} · **{job.status}** · {unit} **{job.step}/{job.steps}** · "
                    f"loss {loss} · ETA {_eta(job.eta_s if job.status == 'running' else None)}  \n{job.message}")
            return text, [list(point) for point in job.losses]
    except Exception as error:
        return from_error(error), []


def cancel_job(ctx: AppContext, job_id: int | None) -> str:
    if job_id is None:
        return problem("choose a job to cancel")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "write", job_id=job_id)
            job = store.request_cancel(session, job_id)
            return ok(f"job {job.id}: {job.message}")
    except Exception as error:
        return from_error(error)


def retry_job(ctx: AppContext, job_id: int | None) -> tuple[int | None, str]:
    if job_id is None:
        return None, problem("choose the interrupted, failed or cancelled job to run again")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "write", job_id=job_id)
            job = store.retry_job(session, job_id)
            return job.id, ok(f"queued job {job.id} with the same settings as job {job_id}")
    except Exception as error:
        return None, from_error(error)
