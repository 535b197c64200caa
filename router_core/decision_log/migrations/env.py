"""Alembic's environment for the decision log: always run from Python with an open connection
(`router_core.decision_log.migrate.upgrade`), never from an alembic.ini."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from router_core.decision_log.schema import metadata

# Replicas on one PostgreSQL database may start together: one migrates, the others wait.
_ADVISORY_LOCK = 72_511_025


def run_migrations_online() -> None:
    """Migrate on the connection the caller opened (in its transaction)."""
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        context.run_migrations()


run_migrations_online()
