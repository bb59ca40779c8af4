"""Sign-in: every project gets an owner (the configured admin user for existing ones) and a table of shares.

Revision ID: 0002_owners_and_shares
Revises: 0001_baseline
"""
import sqlalchemy as sa
from alembic import context, op

revision = "0002_owners_and_shares"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    admin = context.config.attributes.get("admin_user", "admin")
    # add_column, not a batch rebuild: rebuilding `projects` on SQLite would drop it, and with foreign keys on,
    # that cascades to every class, image and box. Existing rows take the admin as owner through the default.
    op.add_column("projects", sa.Column("owner", sa.String(200), nullable=False, server_default=admin))
    op.create_index("ix_projects_owner", "projects", ["owner"])
    op.create_table(
        "project_shares",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "user_name"),
    )
    op.create_index("ix_project_shares_project_id", "project_shares", ["project_id"])
    op.create_index("ix_project_shares_user_name", "project_shares", ["user_name"])


def downgrade() -> None:
    op.drop_table("project_shares")
    op.drop_index("ix_projects_owner", "projects")
    op.drop_column("projects", "owner")  # native DROP COLUMN (SQLite 3.35+, PostgreSQL): no table rebuild
