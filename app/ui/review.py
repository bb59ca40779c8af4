"""Review tab handlers: pre-annotate all, the review queue and its counts, and the editor that shows suggestions
apart from confirmed boxes (accept all, accept or reject the highlighted one, accept as edited). Each handler
takes the user's ctx (app/ui/signed_in.py) and passes app/access.py's check first: read to look, write to change."""
from __future__ import annotations

import re

from app import access, store, suggestions
from app.context import AppContext
from app.ui import display_scale
from app.ui.labelling import coloured_boxes
from app.ui.messages import from_error, ok, problem

SUGGESTED_RGB = (150, 150, 150)  # every pending suggestion: grey, whatever its class
HIGHLIGHT_RGB = (255, 0, 255)  # the one Y / X act on
_SUGGESTION_LABEL = re.compile(r"#(\d+)\s*$")

REVIEW_HELP = """Grey boxes are the model's **suggestions** (class, score), the magenta one is highlighted; coloured
boxes are **confirmed**. Keys on the page: **A** accept all · **Y** accept the highlighted · **X** reject the
highlighted · **V** accept as edited (move or delete suggestions, draw missed boxes, then press V) ·
**R** next image to review. Only confirmed boxes train, evaluate and export."""


def suggestion_label(item: dict, highlighted: bool) -> str:
    mark = "▶ " if highlighted else ""
    return f"{mark}suggested · {item['label']} · {item['score']:.2f} · #{item['id']}"


def counts_markdown(ctx: AppContext, project_id: int | None) -> str:
    if project_id is None:
        return ""
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "read", project_id=project_id)
            counts = suggestions.review_counts(session, project_id)
    except Exception as error:
        return from_error(error)
    i, b = counts["images"], counts["boxes"]
    return (f"**Images:** {i['confirmed']} confirmed · {i['suggested']} with suggestions to review · "
            f"{i['unreviewed']} unreviewed  \n**Boxes:** {b['confirmed']} confirmed · {b['suggested']} suggested")


def start_preannotate(ctx: AppContext, project_id: int | None, source: str, threshold: float
                      ) -> tuple[int | None, str]:
    if project_id is None:
        return None, problem("create or choose a project first")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "write", project_id=project_id)
            job = suggestions.enqueue_preannotate(session, project_id, 0 if source == "zero-shot" else -1,
                                                  threshold, ctx.models.model_id, ctx.models.fingerprint())
            return job.id, ok(f"queued pre-annotation job {job.id} on {job.steps} unreviewed images; "
                              "review them as they come")
    except Exception as error:
        return None, from_error(error)


def job_markdown(ctx: AppContext, job_id: int | None) -> str:
    if job_id is None:
        return ""
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "read", job_id=job_id)
            job = store.current_job(session, job_id, ctx.settings.stale_after_s)
            return (f"**Pre-annotation job {job.id}** · **{job.status}** · {job.step}/{job.steps} images · "
                    f"{job.message}")
    except Exception as error:
        return from_error(error)


def cancel(ctx: AppContext, job_id: int | None) -> str:
    if job_id is None:
        return problem("no pre-annotation job to cancel")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "write", job_id=job_id)
            return ok(f"job {job_id}: {store.request_cancel(session, job_id).message}")
    except Exception as error:
        return from_error(error)


def next_image(ctx: AppContext, project_id: int | None, current: int | None) -> tuple[int | None, str]:
    if project_id is None:
        return None, problem("create or choose a project first")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "read", project_id=project_id)
            found = suggestions.next_to_review(session, project_id, skip=(current,) if current is not None else ())
    except Exception as error:
        return None, from_error(error)
    if found is None:
        return None, ok("nothing left to review: every training image is reviewed (or pre-annotate all first)")
    return found, ok(f"opened image {found} to review")


def editor_value(ctx: AppContext, image_id: int | None) -> tuple[dict | None, int, str]:
    """(annotator value, revision, info) with confirmed boxes in class colours and suggestions in grey."""
    if image_id is None:
        return None, -1, "No image open: press **Next to review (R)**."
    try:
        return _editor_value(ctx, image_id)
    except Exception as error:
        return None, -1, from_error(error)


def _editor_value(ctx: AppContext, image_id: int) -> tuple[dict, int, str]:
    with ctx.database.session() as session:
        access.require(session, ctx.signed_in_user(), "read", image_id=image_id)
        record = store.get_image(session, image_id)
        boxes = coloured_boxes(session, record)
        pending = suggestions.suggestions_of(session, image_id)
        for k, item in enumerate(pending):
            boxes.append({"label": suggestion_label(item, k == 0), "xmin": item["xmin"], "ymin": item["ymin"],
                          "xmax": item["xmax"], "ymax": item["ymax"],
                          "color": HIGHLIGHT_RGB if k == 0 else SUGGESTED_RGB})
        source = pending[0]["source"] if pending else ""
        info = (f"**{record.original_name}** · {len(record.boxes)} confirmed · {len(pending)} suggested"
                f"{f' ({source})' if source else ''} · {'reviewed' if record.reviewed else 'not reviewed yet'}")
        # the page gets a copy only this user may fetch, never the image store's path (as in the Label tab);
        # small images are shown scaled up by a whole factor, boxes with them
        k = display_scale.factor(record.width, record.height)
        image = display_scale.page_image(ctx, store.image_file(ctx.settings.images_dir, record), k)
        return {"image": image, "boxes": display_scale.to_page(boxes, k)}, record.revision, info


def _left(suggested: int) -> str:
    return f"{suggested} suggestions left" if suggested else "image reviewed; press R for the next"


def _pending_ids(ctx: AppContext, image_id: int) -> list[int]:
    with ctx.database.session() as session:
        return [item["id"] for item in suggestions.suggestions_of(session, image_id)]


def act(ctx: AppContext, image_id: int | None, revision: int | None, action: str) -> str:
    """'all' accepts every suggestion, 'one' / 'reject' the highlighted one (the first in the list)."""
    if image_id is None:
        return problem("no image is open; press Next to review (R)")
    try:
        access.check(ctx, "write", image_id=image_id)
        pending = _pending_ids(ctx, image_id)
        if not pending:
            with ctx.database.session() as session:
                suggestions.mark_reviewed(session, image_id)
            return ok("no suggestion left on this image; marked as reviewed - press R for the next one")
        accept = pending if action == "all" else pending[:1] if action == "one" else []
        reject = pending[:1] if action == "reject" else []
        with ctx.database.session() as session:
            result = suggestions.review(session, image_id, accept, reject, revision)
        done = f"accepted {len(accept)}" if accept else f"rejected suggestion {reject[0]}"
        left = _left(result["suggested"])
        return ok(f"{done}; {result['confirmed']} confirmed boxes; {left}")
    except Exception as error:
        return from_error(error)


def accept_edited(ctx: AppContext, image_id: int | None, revision: int | None, value: dict | None) -> str:
    if image_id is None:
        return problem("no image is open; press Next to review (R)")
    confirmed, kept = [], {}
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "write", image_id=image_id)
            shown = store.get_image(session, image_id)
            k = display_scale.factor(shown.width, shown.height)
            for box in display_scale.from_page(list((value or {}).get("boxes") or []), k):
                match = _SUGGESTION_LABEL.search(str(box.get("label") or ""))
                if match and "suggested" in str(box.get("label")):
                    kept[int(match.group(1))] = box
                else:
                    confirmed.append(box)
            result = suggestions.save_review(session, image_id, revision, confirmed, kept)
        left = _left(result["suggested"])
        return ok(f"saved: {result['accepted']} suggestions accepted as edited, {result['rejected']} rejected, "
                  f"{result['confirmed']} confirmed boxes; {left}")
    except Exception as error:
        return from_error(error)
