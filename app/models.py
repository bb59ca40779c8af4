"""SQLAlchemy tables: projects (with their owner and shares), their classes, images, confirmed boxes and model
suggestions, jobs (tuning and pre-annotation) and the prompts they produce. Alembic (app/migrations) owns the schema:
a change here needs a new revision there."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# The one user of single-user mode, and the owner given to projects of databases from before sign-in existed.
DEFAULT_OWNER = "admin"


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # "owner:casefolded name" (store.project_key): names are unique per owner, not across users
    name_key: Mapped[str] = mapped_column(String(400), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # the signed-in user name that owns the project (app/access.py); older databases get the admin user
    owner: Mapped[str] = mapped_column(String(200), index=True, default=DEFAULT_OWNER)
    shares: Mapped[list["ProjectShare"]] = relationship(back_populates="project", cascade="all, delete-orphan",
                                                        order_by="ProjectShare.user_name")
    description: Mapped[str | None] = mapped_column(Text, nullable=True)  # markdown shown under the project picker
    classes: Mapped[list["ClassLabel"]] = relationship(back_populates="project", cascade="all, delete-orphan",
                                                       order_by="ClassLabel.position")
    images: Mapped[list["ImageRecord"]] = relationship(back_populates="project", cascade="all, delete-orphan",
                                                       order_by="ImageRecord.id")
    jobs: Mapped[list["TuningJob"]] = relationship(back_populates="project", cascade="all, delete-orphan")
    prompts: Mapped[list["PromptRecord"]] = relationship(back_populates="project", cascade="all, delete-orphan")


SHARE_ROLES = ("viewer", "editor")


class ProjectShare(Base):
    """Another user's access to a project: a viewer reads, an editor also writes; only the owner shares or deletes."""

    __tablename__ = "project_shares"
    __table_args__ = (UniqueConstraint("project_id", "user_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    user_name: Mapped[str] = mapped_column(String(200), index=True)
    role: Mapped[str] = mapped_column(String(10))  # one of SHARE_ROLES
    project: Mapped[Project] = relationship(back_populates="shares")


class ClassLabel(Base):
    __tablename__ = "classes"
    __table_args__ = (UniqueConstraint("project_id", "name_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200))
    colour: Mapped[str] = mapped_column(String(7))  # "#rrggbb"
    position: Mapped[int] = mapped_column(Integer, default=0)
    project: Mapped[Project] = relationship(back_populates="classes")


class ImageRecord(Base):
    """An image of a project; its file lives once on disk under its content hash."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "sha256"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    suffix: Mapped[str] = mapped_column(String(8))
    original_name: Mapped[str] = mapped_column(String(300))  # shown only; never used as a path
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    split: Mapped[str] = mapped_column(String(10), default="train")  # "train" or "heldout"
    revision: Mapped[int] = mapped_column(Integer, default=0)  # bumped on every box save (two-tab conflicts)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # a person has looked at this image (saved its boxes or finished reviewing its suggestions): jobs leave it alone
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    project: Mapped[Project] = relationship(back_populates="images")
    boxes: Mapped[list["Box"]] = relationship(back_populates="image", cascade="all, delete-orphan",
                                              order_by="Box.id")


class Box(Base):
    """A confirmed box: drawn or accepted by a person. Only these train, evaluate and export (by default)."""

    __tablename__ = "boxes"
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"), index=True)
    x0: Mapped[float] = mapped_column(Float)
    y0: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    image: Mapped[ImageRecord] = relationship(back_populates="boxes")
    label: Mapped[ClassLabel] = relationship()


class Suggestion(Base):
    """A box the model proposed and nobody has accepted or rejected yet; kept apart from confirmed boxes."""

    __tablename__ = "suggestions"
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    # SET NULL, not CASCADE: accepting a suggestion whose class was deleted can then say so by name
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id", ondelete="SET NULL"), nullable=True)
    class_name: Mapped[str] = mapped_column(String(200))
    x0: Mapped[float] = mapped_column(Float)
    y0: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    uncertainty: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1: how much a person's look helps here
    source: Mapped[str] = mapped_column(String(12))  # "zero-shot" or "prompt"
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompts.id", ondelete="SET NULL"), nullable=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("tuning_jobs.id", ondelete="SET NULL"), nullable=True,
                                               index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


JOB_STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
JOB_KINDS = ("tune", "preannotate")


class TuningJob(Base):
    __tablename__ = "tuning_jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(12), default="queued", index=True)
    method: Mapped[str] = mapped_column(String(20))
    steps: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[str] = mapped_column(String(500))
    image_ids: Mapped[list] = mapped_column(JSON)
    class_names: Mapped[list] = mapped_column(JSON)
    step: Mapped[int] = mapped_column(Integer, default=0)
    loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    eta_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    losses: Mapped[list] = mapped_column(JSON, default=list)  # [[step, loss], ...] for the live plot
    message: Mapped[str] = mapped_column(Text, default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # the labelling loop's columns come last, where revision 0003 adds them to existing tables
    kind: Mapped[str] = mapped_column(String(12), default="tune", server_default="tune")  # one of JOB_KINDS
    # tune: the prompt to continue from (warm retune); preannotate: the prompt to detect with (None = zero-shot).
    # A plain id, not a foreign key: prompts already point at their job, and a cycle would need ALTER on SQLite.
    prompt_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)  # preannotate: lowest score kept
    project: Mapped[Project] = relationship(back_populates="jobs")


class PromptRecord(Base):
    """A tuned prompt: its files live in the data directory under prompts/<project>/<job>/."""

    __tablename__ = "prompts"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("tuning_jobs.id", ondelete="SET NULL"), nullable=True)
    method: Mapped[str] = mapped_column(String(20))
    relative_dir: Mapped[str] = mapped_column(String(300))
    base_model: Mapped[str] = mapped_column(String(500))
    base_fingerprint: Mapped[str] = mapped_column(String(100))
    class_names: Mapped[list] = mapped_column(JSON)
    trainable_parameters: Mapped[int] = mapped_column(Integer)
    final_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # the learning curve: confirmed boxes it was tuned on and its held-out COCO mAP (None: no held-out boxes)
    confirmed_boxes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heldout_map: Mapped[float | None] = mapped_column(Float, nullable=True)
    heldout_map50: Mapped[float | None] = mapped_column(Float, nullable=True)
    heldout_images: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # the zero-shot model on the same held-out images: the learning curve's reference line
    zero_shot_map: Mapped[float | None] = mapped_column(Float, nullable=True)
    zero_shot_map50: Mapped[float | None] = mapped_column(Float, nullable=True)
    project: Mapped[Project] = relationship(back_populates="prompts")
