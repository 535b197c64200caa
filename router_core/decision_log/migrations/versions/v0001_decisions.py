"""The decisions table: recorded decisions, their feedback and their review.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table and its indexes."""
    op.create_table(
        "decisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("item", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("caller", sa.String(64), nullable=True),
        sa.Column("route_set", sa.String(64), nullable=False),
        sa.Column("route", sa.String(128), nullable=False),
        sa.Column("agent", sa.String(128), nullable=False),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("decided_by", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("runner_up", sa.String(128), nullable=True),
        sa.Column("margin", sa.Float(), nullable=True),
        sa.Column("index_version", sa.String(128), nullable=False),
        sa.Column("model", sa.String(512), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("turns", sa.Text(), nullable=True),
        sa.Column("recorded_as", sa.String(16), nullable=False),
        sa.Column("llm_outcome", sa.String(32), nullable=True),
        sa.Column("feedback", sa.String(16), nullable=True),
        sa.Column("expected_route", sa.String(128), nullable=True),
        sa.Column("feedback_source", sa.String(16), nullable=True),
        sa.Column("feedback_caller", sa.String(64), nullable=True),
        sa.Column("feedback_at", sa.Float(), nullable=True),
        sa.Column("review_state", sa.String(16), nullable=True),
        sa.Column("review_route", sa.String(128), nullable=True),
        sa.Column("reviewed_at", sa.Float(), nullable=True),
        sa.UniqueConstraint("request_id", "item", name="uq_decisions_request"),
    )
    op.create_index("ix_decisions_created_at", "decisions", ["created_at"])
    op.create_index("ix_decisions_feedback", "decisions", ["feedback"])


def downgrade() -> None:
    """Drop the table (and with it every recorded decision)."""
    op.drop_index("ix_decisions_feedback", table_name="decisions")
    op.drop_index("ix_decisions_created_at", table_name="decisions")
    op.drop_table("decisions")
