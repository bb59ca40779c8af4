"""Projects tab: create, rename and delete projects; add, rename, recolour and delete classes."""
from __future__ import annotations

from app import access, store
from app.context import AppContext
from app.ui.messages import from_error, ok, problem


def project_choices(ctx: AppContext) -> list[tuple[str, int]]:
    """The projects the user may read; shared ones name their owner and the user's role."""
    with ctx.database.session() as session:
        user = ctx.signed_in_user()
        return [(p.name if role == "owner" else f"{p.name} ({role}, owned by {p.owner})", p.id)
                for p, role in access.visible_projects(session, user)]


def create_project(ctx: AppContext, name: str) -> tuple[int | None, str]:
    try:
        with ctx.database.session() as session:
            user = ctx.signed_in_user()
            if user is None:
                raise access.AccessDenied("sign in first: projects belong to the user who creates them")
            project = store.create_project(session, name, owner=user.name)
            return project.id, ok(f"created project {project.name!r}; now add the classes you want to detect")
    except Exception as error:
        return None, from_error(error)


def rename_project(ctx: AppContext, project_id: int | None, name: str) -> str:
    if project_id is None:
        return problem("choose a project first")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "own", project_id=project_id)
            return ok(f"renamed the project to {store.rename_project(session, project_id, name).name!r}")
    except Exception as error:
        return from_error(error)


def delete_project(ctx: AppContext, project_id: int | None, confirmed: bool) -> str:
    if project_id is None:
        return problem("choose a project first")
    if not confirmed:
        return problem("tick 'yes, delete it' to delete the project with all its boxes, jobs and prompts")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "own", project_id=project_id)
            return ok(f"deleted project {store.delete_project(session, project_id)!r}")
    except Exception as error:
        return from_error(error)


def class_rows(ctx: AppContext, project_id: int | None) -> list[list]:
    if project_id is None:
        return []
    with ctx.database.session() as session:
        access.require(session, ctx.signed_in_user(), "read", project_id=project_id)
        counts: dict[int, int] = {}
        for image in store.list_images(session, project_id):
            for box in image.boxes:
                counts[box.class_id] = counts.get(box.class_id, 0) + 1
        return [[c.name, c.colour, counts.get(c.id, 0)] for c in store.list_classes(session, project_id)]


def class_choices(ctx: AppContext, project_id: int | None) -> list[tuple[str, int]]:
    if project_id is None:
        return []
    with ctx.database.session() as session:
        access.require(session, ctx.signed_in_user(), "read", project_id=project_id)
        return [(c.name, c.id) for c in store.list_classes(session, project_id)]


def labels_and_colours(ctx: AppContext, project_id: int | None) -> tuple[list[str], list[str]]:
    if project_id is None:
        return [], []
    with ctx.database.session() as session:
        access.require(session, ctx.signed_in_user(), "read", project_id=project_id)
        classes = store.list_classes(session, project_id)
        return [c.name for c in classes], [c.colour for c in classes]


def add_classes(ctx: AppContext, project_id: int | None, names: str, colour: str | None) -> str:
    """Add one class, or several separated by commas or new lines (all or none)."""
    if project_id is None:
        return problem("create or choose a project first")
    wanted = [n for n in (names or "").replace("\n", ",").split(",") if n.strip()]
    if not wanted:
        return problem("type a class name (several: separate them with commas)")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "write", project_id=project_id)
            added = [store.add_class(session, project_id, n, colour if len(wanted) == 1 else None).name
                     for n in wanted]
        return ok(f"added {', '.join(repr(n) for n in added)}")
    except Exception as error:
        return from_error(error)


def rename_class(ctx: AppContext, class_id: int | None, name: str) -> str:
    if class_id is None:
        return problem("choose the class to rename")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "write", class_id=class_id)
            return ok(f"renamed the class to {store.rename_class(session, class_id, name).name!r}")
    except Exception as error:
        return from_error(error)


def recolour_class(ctx: AppContext, class_id: int | None, colour: str) -> str:
    if class_id is None:
        return problem("choose the class to recolour")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "write", class_id=class_id)
            label = store.set_class_colour(session, class_id, colour)
            return ok(f"{label.name!r} is now drawn in {label.colour}")
    except Exception as error:
        return from_error(error)


def delete_class(ctx: AppContext, class_id: int | None, confirmed: bool) -> str:
    if class_id is None:
        return problem("choose the class to delete")
    if not confirmed:
        return problem("tick 'yes, delete it' to delete the class and all its boxes")
    try:
        with ctx.database.session() as session:
            access.require(session, ctx.signed_in_user(), "write", class_id=class_id)
            name, boxes = store.delete_class(session, class_id)
            return ok(f"deleted class {name!r} and its {boxes} boxes")
    except Exception as error:
        return from_error(error)


def share_project(ctx: AppContext, project_id: int | None, other: str, role: str) -> str:
    """Owner only: make `other` a viewer or editor of the project, or ("remove") take their access away."""
    if project_id is None:
        return problem("choose the project to share")
    try:
        with ctx.database.session() as session:
            return ok(access.share(session, ctx.signed_in_user(), project_id, other,
                                   None if role == "remove" else role))
    except Exception as error:
        return from_error(error)


def sharing_summary(ctx: AppContext, project_id: int | None) -> str:
    """Who owns the project and who else may see it, for the projects tab."""
    if project_id is None:
        return ""
    try:
        with ctx.database.session() as session:
            project = access.require(session, ctx.signed_in_user(), "read", project_id=project_id)
            others = ", ".join(f"{s.user_name} ({s.role})" for s in project.shares) or "nobody else"
            return f"Owner: **{project.owner}** · shared with: {others}"
    except Exception as error:
        return from_error(error)
