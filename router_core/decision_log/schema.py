"""The decision log's table, in SQLAlchemy Core; the migrations create exactly this (a test
compares them)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

decisions = sa.Table(
    "decisions",
    metadata,
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
    sa.Column("turns", sa.Text(), nullable=True),  # JSON: the deciding messages of a conversation
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
    sa.Index("ix_decisions_created_at", "created_at"),
    sa.Index("ix_decisions_feedback", "feedback"),
)
