"""The zero-shot model's held-out mAP beside each prompt's, for the learning curve's reference line.

Revision ID: 0004_zero_shot_reference
Revises: 0003_labelling_loop
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_zero_shot_reference"
down_revision = "0003_labelling_loop"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain add_column, never a batch rebuild (see 0003): prompts from before keep a None reference
    op.add_column("prompts", sa.Column("zero_shot_map", sa.Float(), nullable=True))
    op.add_column("prompts", sa.Column("zero_shot_map50", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("prompts", "zero_shot_map50")
    op.drop_column("prompts", "zero_shot_map")
