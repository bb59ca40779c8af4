"""The labelling loop: model suggestions kept apart from confirmed boxes, reviewed images, pre-annotation jobs,
warm retunes and the held-out learning curve. Images that already have boxes count as reviewed.

Revision ID: 0003_labelling_loop
Revises: 0002_owners_and_shares
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_labelling_loop"
down_revision = "0002_owners_and_shares"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain add_column with server defaults, never a batch rebuild: rebuilding images or tuning_jobs on SQLite would
    # drop the table, and with foreign keys on that cascades to boxes and prompts
    op.add_column("projects", sa.Column("description", sa.Text(), nullable=True))
    op.add_column("images", sa.Column("reviewed", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("tuning_jobs", sa.Column("kind", sa.String(12), nullable=False, server_default="tune"))
    op.add_column("tuning_jobs", sa.Column("prompt_id", sa.Integer(), nullable=True))
    op.add_column("tuning_jobs", sa.Column("threshold", sa.Float(), nullable=True))
    for name, kind in (("confirmed_boxes", sa.Integer()), ("heldout_map", sa.Float()),
                       ("heldout_map50", sa.Float()), ("heldout_images", sa.Integer())):
        op.add_column("prompts", sa.Column(name, kind, nullable=True))
    op.create_table(
        "suggestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=True),
        sa.Column("class_name", sa.String(200), nullable=False),
        sa.Column("x0", sa.Float(), nullable=False),
        sa.Column("y0", sa.Float(), nullable=False),
        sa.Column("x1", sa.Float(), nullable=False),
        sa.Column("y1", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("uncertainty", sa.Float(), nullable=False),
        sa.Column("source", sa.String(12), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["class_id"], ["classes.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["job_id"], ["tuning_jobs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_suggestions_image_id", "suggestions", ["image_id"])
    op.create_index("ix_suggestions_job_id", "suggestions", ["job_id"])
    # images labelled before the loop existed were looked at by a person: pre-annotation must leave them alone
    images, boxes = sa.table("images", sa.column("id"), sa.column("reviewed", sa.Boolean())), \
        sa.table("boxes", sa.column("image_id"))
    op.execute(images.update().where(images.c.id.in_(sa.select(boxes.c.image_id))).values(reviewed=True))


def downgrade() -> None:
    op.drop_table("suggestions")
    # native DROP COLUMN (SQLite 3.35+, PostgreSQL): no table rebuild
    for name in ("heldout_images", "heldout_map50", "heldout_map", "confirmed_boxes"):
        op.drop_column("prompts", name)
    for name in ("threshold", "prompt_id", "kind"):
        op.drop_column("tuning_jobs", name)
    op.drop_column("images", "reviewed")
    op.drop_column("projects", "description")
