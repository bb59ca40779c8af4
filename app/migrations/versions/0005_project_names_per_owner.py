"""Project names unique per owner, not across users: the unique name key becomes "owner:casefolded name", so that
creating a project can no longer reveal that another user has one of that name.

Revision ID: 0005_project_names_per_owner
Revises: 0004_zero_shot_reference
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_project_names_per_owner"
down_revision = "0004_zero_shot_reference"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the key changes in place (an UPDATE, never a batch rebuild of projects: on SQLite that would cascade to every
    # child table, see 0003); SQLite does not enforce VARCHAR lengths, PostgreSQL needs the wider column
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("projects", "name_key", type_=sa.String(400), existing_type=sa.String(200))
    op.execute(sa.text("UPDATE projects SET name_key = owner || ':' || name_key"))


def downgrade() -> None:
    # back to one key across users; fails (and changes nothing) if two users now have projects of the same name
    op.execute(sa.text("UPDATE projects SET name_key = substr(name_key, length(owner) + 2)"))
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("projects", "name_key", type_=sa.String(200), existing_type=sa.String(400))
