"""Who may do what with a project: the app's one access check. Every handler that touches a project, or anything
inside one (class, image, job, prompt), calls `check` (own session) or `require` (inside its session) first.

Levels: "read" (list, open, export, download, compare, follow jobs), "write" (change boxes, classes, images, tune,
cancel, import) and "own" (rename, delete, share). The owner has all three, an editor read and write, a viewer
read. In single-user mode (no sign-in configured) the one user may do everything, as before sign-in existed.
Asking for something that does not exist and for something not shared with you give the same answer, so ids
cannot be probed.

A new endpoint applies it with one call:
- API (app/ui/api.py): take `request: gr.Request` first, run the work as `_call(ctx, request, "/name", work)`, and
  begin `work(session, user)` with `access.require(session, user, "write", project_id=...)` (or image_id=,
  job_id=, prompt_id=, class_id=; several must lie in one project).
- UI (app/ui/layout.py): register `signed_in(ctx, handler)`, whose first parameter `ctx` is bound to the user,
  and begin the handler with `access.check(ctx, "read", image_id=...)` (own session) or `access.require(session,
  ctx.signed_in_user(), ...)` inside its session. New projects: `store.create_project(..., owner=user.name)`;
  lists of projects: `visible_projects`.
- A new table whose rows belong to a project: add its id keyword and model to KINDS; the model needs a
  project_id column, or an image_id column (as suggestions have) whose image gives the project.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.models import ClassLabel, ImageRecord, Project, ProjectShare, PromptRecord, Suggestion, TuningJob
from app.store import StoreError, id_in_range

LEVELS = {"read": 0, "write": 1, "own": 2}
ROLE_LEVEL = {"viewer": 0, "editor": 1, "owner": 2}
# what each id names, and the row that carries its project_id
KINDS = {"project_id": ("project", Project), "class_id": ("class", ClassLabel), "image_id": ("image", ImageRecord),
         "job_id": ("job", TuningJob), "prompt_id": ("prompt", PromptRecord),
         "suggestion_id": ("suggestion", Suggestion)}


class AccessDenied(StoreError):
    """Not signed in, or not allowed; shown to the user like any other refusal."""


@dataclass(frozen=True)
class User:
    name: str
    everything: bool = False  # single-user mode: the only user may do everything


def _as_id(value, key: str) -> int:
    if isinstance(value, bool):
        raise StoreError(f"{key} must be a whole number (an id the app returned), not {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise StoreError(f"{key} must be a whole number (an id the app returned), not {value!r}") from None
    if number != value and not isinstance(value, str):
        raise StoreError(f"{key} must be a whole number (an id the app returned), not {value!r}")
    return number


def role_of(project: Project, user: User) -> str | None:
    if user.everything or project.owner == user.name:
        return "owner"
    return next((share.role for share in project.shares if share.user_name == user.name), None)


def _project_of(session: Session, row) -> Project | None:
    """The project a row lies in: through its project_id, or through its image (suggestions)."""
    if row is None:
        return None
    if hasattr(row, "project_id"):
        return session.get(Project, row.project_id)
    image = session.get(ImageRecord, row.image_id)
    return None if image is None else session.get(Project, image.project_id)


def require(session: Session, user: User | None, need: str, **ids) -> Project:
    """The project that `ids` (one of project_id, class_id, image_id, job_id, prompt_id, suggestion_id) belong to,
    when `user` may `need` ("read", "write" or "own") it; AccessDenied otherwise. Several ids must all lie in the
    same project."""
    if user is None:
        raise AccessDenied("sign in first: this app's projects are private to their owners")
    if need not in LEVELS:
        raise ValueError(f"unknown access level {need!r}")
    project = None
    for key, value in ids.items():
        if value is None:
            continue
        what, model = KINDS[key]
        number = _as_id(value, key)
        # an id beyond the database's integer range names no row: the same answer as an unknown id
        row = session.get(model, number) if id_in_range(number) else None
        owner = row if model is Project else _project_of(session, row)
        if owner is None or role_of(owner, user) is None or (project is not None and owner.id != project.id):
            raise AccessDenied(f"{what} {number} does not exist or is not shared with you; reload the page")
        project = owner
    if project is None:
        raise StoreError("choose a project first")
    role = role_of(project, user)
    if ROLE_LEVEL[role] < LEVELS[need]:
        if need == "own":
            raise AccessDenied(f"only the owner ({project.owner}) can rename, delete or share {project.name!r}")
        raise AccessDenied(f"you can view {project.name!r} but not change it; ask its owner ({project.owner}) to "
                           "make you an editor")
    return project


def check(ctx, need: str, **ids) -> int:
    """`require` in a session of its own, for `ctx.user` (see context.AppContext); returns the project id."""
    with ctx.database.session() as session:
        return require(session, ctx.signed_in_user(), need, **ids).id


def visible_projects(session: Session, user: User | None) -> list[tuple[Project, str]]:
    """(project, role) for every project `user` may read, by name."""
    if user is None:
        return []
    query = select(Project).order_by(func.lower(Project.name), Project.owner)
    if not user.everything:
        shared = select(ProjectShare.project_id).where(ProjectShare.user_name == user.name)
        query = query.where(or_(Project.owner == user.name, Project.id.in_(shared)))
    return [(project, role_of(project, user)) for project in session.scalars(query)]


def share(session: Session, user: User | None, project_id: int, other: str, role: str | None) -> str:
    """Give `other` a role ("viewer" or "editor") on the project, or take it away (role None). Owner only."""
    from app.auth import SignInError, check_user_name

    project = require(session, user, "own", project_id=project_id)
    try:
        other = check_user_name(other, "share with")
    except SignInError as error:
        raise StoreError(str(error)) from error
    if other == project.owner:
        raise StoreError(f"{other} owns {project.name!r} already")
    existing = next((s for s in project.shares if s.user_name == other), None)
    if role is None:
        if existing is None:
            raise StoreError(f"{project.name!r} is not shared with {other}")
        project.shares.remove(existing)
        return f"{other} no longer has access to {project.name!r}"
    if role not in ("viewer", "editor"):
        raise StoreError(f"role must be 'viewer' or 'editor', not {role!r}")
    if existing is None:
        project.shares.append(ProjectShare(user_name=other, role=role))
    else:
        existing.role = role
    return f"{other} is now {'an editor' if role == 'editor' else 'a viewer'} of {project.name!r}"
