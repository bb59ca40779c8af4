"""Database reads and writes of the labelling loop: model suggestions apart from confirmed boxes, their review,
the review queue and its counts, pre-annotation jobs and the learning curve. Like `app.store`, every function takes
a session and a project or image id; user-fixable problems raise `StoreError` and write nothing."""
from __future__ import annotations

import unicodedata

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from app.models import Box, ImageRecord, PromptRecord, Suggestion, TuningJob, utcnow
from app.store import StoreError, box_coordinates, get_image, get_project, list_classes

MAX_SUGGESTIONS_PER_IMAGE = 100
PREANNOTATE_METHOD = "preannotate"  # TuningJob.method of a pre-annotation job (its source is in prompt_id)


# ---- writing suggestions (jobs) ---------------------------------------------------------------------------

def write_suggestions(session: Session, image_id: int, found: list[dict], source: str, prompt_id: int | None,
                      job_id: int | None) -> bool:
    """Replace an unreviewed image's suggestions with `found` ({label, xmin, ymin, xmax, ymax, score, uncertainty}).

    Confirmed boxes are never read or written here. Returns False (and writes nothing) when a person reviewed or
    labelled the image meanwhile, or it was deleted.
    """
    record = session.get(ImageRecord, image_id, populate_existing=True)
    if record is None or record.reviewed or record.boxes:
        return False
    classes = {c.name_key: c for c in list_classes(session, record.project_id)}
    session.execute(delete(Suggestion).where(Suggestion.image_id == image_id))
    rows = []
    for item in sorted(found, key=lambda f: -f["score"])[:MAX_SUGGESTIONS_PER_IMAGE]:
        label = classes.get(str(item["label"]).casefold())
        if label is None:
            continue  # its class was deleted while the job ran
        rows.append({"image_id": image_id, "class_id": label.id, "class_name": label.name,
                     "x0": float(item["xmin"]), "y0": float(item["ymin"]), "x1": float(item["xmax"]),
                     "y1": float(item["ymax"]), "score": float(item["score"]),
                     "uncertainty": float(item.get("uncertainty", 0.0)), "source": source, "prompt_id": prompt_id,
                     "job_id": job_id, "created_at": utcnow()})
    if rows:  # one executemany: a bulk job writes thousands of rows
        session.execute(insert(Suggestion), rows)
    record.revision += 1  # an editor open on the old suggestions must reload before it reviews
    session.flush()
    return True


def list_suggestions(session: Session, image_id: int) -> list[Suggestion]:
    get_image(session, image_id)
    return list(session.scalars(select(Suggestion).where(Suggestion.image_id == image_id)
                                .order_by(Suggestion.score.desc(), Suggestion.id)))


def suggestions_of(session: Session, image_id: int) -> list[dict]:
    return [{"id": s.id, "label": s.class_name, "xmin": s.x0, "ymin": s.y0, "xmax": s.x1, "ymax": s.y1,
             "score": round(s.score, 4), "source": s.source, "prompt_id": s.prompt_id}
            for s in list_suggestions(session, image_id)]


# ---- review ------------------------------------------------------------------------------------------------

def _edited_geometry(item: dict, record: ImageRecord, number: int, tolerance: float = 2.0) -> tuple[float, ...]:
    x0, y0, x1, y1 = box_coordinates(item, f"edited suggestion {number}")
    if x0 < -tolerance or y0 < -tolerance or x1 > record.width + tolerance or y1 > record.height + tolerance:
        raise StoreError(f"edited suggestion {number} lies outside the {record.width}x{record.height} image")
    x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(record.width), x1), min(float(record.height), y1)
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise StoreError(f"edited suggestion {number} is empty or inverted; draw it again")
    return x0, y0, x1, y1


def review(session: Session, image_id: int, accept: list, reject: list, revision: int | None) -> dict:
    """Accept (as confirmed boxes) and reject suggestions of one image, all or nothing.

    `accept` holds suggestion ids, or dicts {id, xmin, ymin, xmax, ymax[, label]} for a suggestion edited before
    it is accepted. When no suggestion is left the image counts as reviewed. Returns {confirmed, suggested,
    revision}.
    """
    record = get_image(session, image_id)
    if revision is not None and revision >= 0 and record.revision != revision:
        raise StoreError(f"'{record.original_name}' was changed in another tab or window (or pre-annotated again) "
                         "since you opened it; reload the image and review again - nothing was changed")
    pending = {s.id: s for s in session.scalars(select(Suggestion).where(Suggestion.image_id == image_id))}
    classes = {c.name_key: c for c in list_classes(session, record.project_id)}
    accepted, rejected = [], []
    for item in accept or []:
        edit = item if isinstance(item, dict) else None
        try:
            key = int(edit["id"] if edit is not None else item)
        except (KeyError, TypeError, ValueError) as error:
            raise StoreError(f"accept holds {item!r}; give suggestion ids or {{id, xmin, ymin, xmax, ymax}}") \
                from error
        suggestion = pending.get(key)
        if suggestion is None:
            raise StoreError(f"suggestion {key} is not on '{record.original_name}' any more (reviewed in another "
                             "tab, or replaced by a newer pre-annotation); reload the image - nothing was changed")
        label = next((c for c in classes.values() if c.id == suggestion.class_id), None)
        if edit is not None and edit.get("label"):
            name = unicodedata.normalize("NFKC", str(edit["label"])).strip().casefold()
            label = classes.get(name)
            if label is None:
                raise StoreError(f"edited suggestion {key} has class {edit['label']!r}, which is not in this "
                                 "project; pick an existing class - nothing was changed")
        if label is None:
            raise StoreError(f"suggestion {key} is a '{suggestion.class_name}', a class that was deleted; reject "
                             "it, or edit it to an existing class before accepting - nothing was changed")
        geometry = _edited_geometry(edit, record, key) if edit is not None else \
            (suggestion.x0, suggestion.y0, suggestion.x1, suggestion.y1)
        accepted.append((suggestion, label, geometry))
    for item in reject or []:
        try:
            key = int(item)
        except (TypeError, ValueError) as error:
            raise StoreError(f"reject holds {item!r}; give suggestion ids") from error
        if key not in pending:
            raise StoreError(f"suggestion {key} is not on '{record.original_name}' any more; reload the image - "
                             "nothing was changed")
        rejected.append(pending[key])
    overlap = {s.id for s, _, _ in accepted} & {s.id for s in rejected}
    if overlap:
        raise StoreError(f"suggestions {sorted(overlap)} are both accepted and rejected; choose one")
    for suggestion, label, (x0, y0, x1, y1) in accepted:
        record.boxes.append(Box(class_id=label.id, x0=x0, y0=y0, x1=x1, y1=y1))
        session.delete(suggestion)
    for suggestion in rejected:
        session.delete(suggestion)
    left = len(pending) - len(accepted) - len(rejected)
    if left == 0:
        record.reviewed = True
    record.revision += 1
    session.flush()
    return {"confirmed": len(record.boxes), "suggested": left, "revision": record.revision,
            "accepted": len(accepted), "rejected": len(rejected)}


def save_review(session: Session, image_id: int, revision: int | None, confirmed: list[dict],
                kept: dict[int, dict], moved_px: float = 1.5) -> dict:
    """What the review editor shows, saved: `confirmed` ({label, xmin, ...}) become the image's confirmed boxes;
    of its suggestions, those in `kept` (id -> box as now drawn) that were moved are accepted as edited, those
    still in place stay suggestions, and those no longer drawn are rejected. All or nothing."""
    from app.store import save_boxes

    record = get_image(session, image_id)
    if revision is not None and revision >= 0 and record.revision != revision:
        raise StoreError(f"'{record.original_name}' was changed in another tab or window (or pre-annotated again) "
                         "since you opened it; reload the image and review again - nothing was changed")
    pending = {s.id: s for s in session.scalars(select(Suggestion).where(Suggestion.image_id == image_id))}
    edited, rejected = [], []
    for key, suggestion in pending.items():
        box = kept.get(key)
        if box is None:
            rejected.append(key)
            continue
        old = (suggestion.x0, suggestion.y0, suggestion.x1, suggestion.y1)
        new = box_coordinates(box, f"suggestion {key}")
        if max(abs(a - b) for a, b in zip(old, new)) > moved_px:
            edited.append({"id": key, "xmin": new[0], "ymin": new[1], "xmax": new[2], "ymax": new[3]})
    save_boxes(session, image_id, confirmed, None, mark_reviewed=False)
    return review(session, image_id, edited, rejected, None)


# ---- the review queue ----------------------------------------------------------------------------------------

def next_to_review(session: Session, project_id: int, skip: tuple[int, ...] = ()) -> int | None:
    """The unreviewed training image where a look helps most: the most uncertain suggestions first, then images
    with suggestions by their lowest score, then images without any; None when every image is reviewed."""
    get_project(session, project_id)
    ranked = (select(Suggestion.image_id, func.max(Suggestion.uncertainty).label("most"),
                     func.min(Suggestion.score).label("least"))
              .group_by(Suggestion.image_id).subquery())
    query = (select(ImageRecord.id)
             .outerjoin(ranked, ranked.c.image_id == ImageRecord.id)
             .where(ImageRecord.project_id == project_id, ImageRecord.split == "train",
                    ImageRecord.reviewed.is_(False))
             .order_by(ranked.c.image_id.is_(None), ranked.c.most.desc(), ranked.c.least, ImageRecord.id))
    if skip:
        query = query.where(ImageRecord.id.notin_(list(skip)))
    return session.scalar(query.limit(1))


def review_counts(session: Session, project_id: int) -> dict:
    """Images and boxes by state: confirmed (reviewed), suggested (waiting for review), unreviewed (no suggestion)."""
    get_project(session, project_id)
    with_suggestions = select(Suggestion.image_id).join(ImageRecord).where(ImageRecord.project_id == project_id) \
        .distinct().subquery()
    images = dict(session.execute(
        select(ImageRecord.reviewed, func.count()).where(ImageRecord.project_id == project_id)
        .group_by(ImageRecord.reviewed)).all())
    suggested_images = session.scalar(
        select(func.count()).select_from(ImageRecord).join(with_suggestions, with_suggestions.c.image_id ==
                                                          ImageRecord.id)
        .where(ImageRecord.reviewed.is_(False))) or 0
    confirmed_boxes = session.scalar(select(func.count()).select_from(Box).join(ImageRecord)
                                     .where(ImageRecord.project_id == project_id)) or 0
    suggested_boxes = session.scalar(select(func.count()).select_from(Suggestion).join(ImageRecord)
                                     .where(ImageRecord.project_id == project_id)) or 0
    unreviewed = images.get(False, 0)
    return {"images": {"confirmed": images.get(True, 0), "suggested": suggested_images,
                       "unreviewed": unreviewed - suggested_images},
            "boxes": {"confirmed": confirmed_boxes, "suggested": suggested_boxes}}


def mark_reviewed(session: Session, image_id: int) -> ImageRecord:
    record = get_image(session, image_id)
    record.reviewed = True
    return record


# ---- pre-annotation jobs -------------------------------------------------------------------------------------

def resolve_prompt(session: Session, project_id: int, prompt_id: int) -> PromptRecord | None:
    """-1: the project's latest prompt, 0: zero-shot (None), else that prompt of this project."""
    from app.store import latest_prompt

    if prompt_id == 0:
        return None
    if prompt_id == -1:
        found = latest_prompt(session, project_id)
        if found is None:
            raise StoreError("this project has no tuned prompt yet; tune one first, or pre-annotate zero-shot (0)")
        return found
    found = session.get(PromptRecord, prompt_id)
    if found is None or found.project_id != project_id:
        raise StoreError(f"prompt {prompt_id} is not a prompt of this project; use -1 (latest) or 0 (zero-shot)")
    return found


def enqueue_preannotate(session: Session, project_id: int, prompt_id: int, threshold: float, model_id: str,
                        fingerprint: str) -> TuningJob:
    """Queue a job that writes suggestions on every unreviewed training image; refuses a prompt that cannot run."""
    if not 0.0 < float(threshold) < 1.0:
        raise StoreError(f"the score threshold must lie between 0 and 1, not {threshold}")
    classes = list_classes(session, project_id)
    if not classes:
        raise StoreError("this project has no classes; add the classes you want to detect first")
    prompt = resolve_prompt(session, project_id, int(prompt_id))
    if prompt is not None:
        if prompt.base_fingerprint != fingerprint:
            raise StoreError(f"prompt {prompt.id} was tuned on base model '{prompt.base_model}', but the app runs "
                             f"'{model_id}'; start the app with that model, or pre-annotate zero-shot (0)")
        if [n.casefold() for n in prompt.class_names] != [c.name_key for c in classes]:
            raise StoreError(f"prompt {prompt.id} was tuned for the classes {', '.join(prompt.class_names)}, but the "
                             f"project has {', '.join(c.name for c in classes)}; tune again, or pre-annotate "
                             "zero-shot (0)")
    busy = session.scalar(select(TuningJob.id).where(TuningJob.project_id == project_id,
                                                     TuningJob.kind == "preannotate",
                                                     TuningJob.status.in_(("queued", "running"))).limit(1))
    if busy is not None:
        raise StoreError(f"pre-annotation job {busy} of this project is still queued or running; wait for it or "
                         "cancel it first")
    images = [i.id for i in session.scalars(select(ImageRecord).where(
        ImageRecord.project_id == project_id, ImageRecord.split == "train", ImageRecord.reviewed.is_(False))
        .order_by(ImageRecord.id)) if not i.boxes]
    if not images:
        raise StoreError("every training image is reviewed already; add images to pre-annotate")
    source = "zero-shot" if prompt is None else f"prompt {prompt.id}"
    job = TuningJob(project_id=project_id, kind="preannotate", method=PREANNOTATE_METHOD, steps=len(images),
                    model_id=model_id, image_ids=images, class_names=[c.name for c in classes], losses=[],
                    prompt_id=None if prompt is None else prompt.id, threshold=float(threshold),
                    message=f"queued: pre-annotate {len(images)} images ({source})")
    session.add(job)
    session.flush()
    return job


# ---- the learning curve ------------------------------------------------------------------------------------

def record_heldout(session: Session, prompt_id: int, confirmed_boxes: int, scores: dict | None) -> PromptRecord:
    """Store a prompt's held-out score as routed (the one number it is known by) and the zero-shot model's on the
    same images (`scores` as app.heldout.route_and_score returns it; None: no held-out boxes)."""
    record = session.get(PromptRecord, prompt_id)
    record.confirmed_boxes = confirmed_boxes
    if scores is not None:
        routed, zero = scores["routed"], scores["zero-shot"]
        record.heldout_map, record.heldout_map50 = routed["map"], routed["map50"]
        record.heldout_images = routed.get("images")
        record.zero_shot_map, record.zero_shot_map50 = zero["map"], zero["map50"]
    return record


def learning_curve(session: Session, project_id: int) -> list[dict]:
    """One point per prompt evaluated on held-out images, oldest first."""
    get_project(session, project_id)
    prompts = session.scalars(select(PromptRecord).where(PromptRecord.project_id == project_id,
                                                         PromptRecord.heldout_map.is_not(None))
                              .order_by(PromptRecord.id))
    return [{"prompt_id": p.id, "confirmed_boxes": p.confirmed_boxes, "map": round(p.heldout_map, 4),
             "map50": round(p.heldout_map50, 4),
             "zero_shot_map": None if p.zero_shot_map is None else round(p.zero_shot_map, 4),
             "zero_shot_map50": None if p.zero_shot_map50 is None else round(p.zero_shot_map50, 4)} for p in prompts]

