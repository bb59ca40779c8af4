"""Database reads and writes of projects and their classes."""
from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import DEFAULT_OWNER, Box, ClassLabel, ImageRecord, Project
from app.store.common import MAX_CLASSES, PALETTE, StoreError, _get, clean_name

def list_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(func.lower(Project.name), Project.owner)))


def get_project(session: Session, project_id: int) -> Project:
    return _get(session, Project, project_id, "project")


def project_key(owner: str, key: str) -> str:
    """The unique key of a project name: per owner, so nothing about other users' projects can be learnt from a
    clash (user names cannot hold ':', so the key is unambiguous)."""
    return f"{owner}:{key}"


def create_project(session: Session, name: str, owner: str = DEFAULT_OWNER) -> Project:
    display, key = clean_name(name, "project")
    if session.scalar(select(Project).where(Project.name_key == project_key(owner, key))) is not None:
        raise StoreError(f"you have a project called {display!r} already; pick another name")
    project = Project(name=display, name_key=project_key(owner, key), owner=owner)
    session.add(project)
    session.flush()
    return project


def rename_project(session: Session, project_id: int, name: str) -> Project:
    project = get_project(session, project_id)
    display, key = clean_name(name, "project")
    clash = session.scalar(select(Project).where(Project.name_key == project_key(project.owner, key),
                                                 Project.id != project_id))
    if clash:
        raise StoreError(f"{project.owner} has a project called {display!r} already; pick another name")
    project.name, project.name_key = display, project_key(project.owner, key)
    return project


def delete_project(session: Session, project_id: int) -> str:
    project = get_project(session, project_id)
    name = project.name
    session.delete(project)
    return name


# ---- classes ----------------------------------------------------------------------------------------------

def list_classes(session: Session, project_id: int) -> list[ClassLabel]:
    return list(session.scalars(select(ClassLabel).where(ClassLabel.project_id == project_id)
                                .order_by(ClassLabel.position, ClassLabel.id)))


def _check_colour(colour: str) -> str:
    colour = (colour or "").strip().lower()
    if len(colour) != 7 or colour[0] != "#" or any(c not in "0123456789abcdef" for c in colour[1:]):
        raise StoreError(f"colour {colour!r} is not a '#rrggbb' colour")
    return colour


def add_class(session: Session, project_id: int, name: str, colour: str | None = None) -> ClassLabel:
    get_project(session, project_id)
    display, key = clean_name(name, "class")
    existing = list_classes(session, project_id)
    if any(c.name_key == key for c in existing):
        raise StoreError(f"class {display!r} exists already in this project")
    if len(existing) >= MAX_CLASSES:
        raise StoreError(f"a project holds at most {MAX_CLASSES} classes")
    colour = _check_colour(colour) if colour else PALETTE[len(existing) % len(PALETTE)]
    label = ClassLabel(project_id=project_id, name=display, name_key=key, colour=colour,
                       position=max((c.position for c in existing), default=-1) + 1)
    session.add(label)
    session.flush()
    return label


def rename_class(session: Session, class_id: int, name: str) -> ClassLabel:
    label = _get(session, ClassLabel, class_id, "class")
    display, key = clean_name(name, "class")
    if any(c.name_key == key and c.id != class_id for c in list_classes(session, label.project_id)):
        raise StoreError(f"class {display!r} exists already in this project")
    label.name, label.name_key = display, key
    return label


def set_class_colour(session: Session, class_id: int, colour: str) -> ClassLabel:
    label = _get(session, ClassLabel, class_id, "class")
    label.colour = _check_colour(colour)
    return label


def delete_class(session: Session, class_id: int) -> tuple[str, int]:
    """Delete a class and its boxes; returns (name, number of boxes removed)."""
    label = _get(session, ClassLabel, class_id, "class")
    boxes = session.scalar(select(func.count()).select_from(Box).where(Box.class_id == class_id)) or 0
    touched = session.scalars(select(Box.image_id).where(Box.class_id == class_id).distinct()).all()
    session.execute(Box.__table__.delete().where(Box.class_id == class_id))
    if touched:
        session.execute(update(ImageRecord).where(ImageRecord.id.in_(touched))
                        .values(revision=ImageRecord.revision + 1))
    name = label.name
    session.delete(label)
    return name, boxes
