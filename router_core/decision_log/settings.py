"""Settings of the decision log (`ROUTER_DECISION_LOG__*`): what is recorded, for how long, and
where. Texts are user data: `record: none` stores nothing at all."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

RecordMode = Literal["none", "uncertain", "all"]
SQLITE_FILE = "decisions.sqlite3"
_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")


class DecisionLogSettings(BaseModel):
    """What the decision log records and where it keeps it."""

    model_config = ConfigDict(extra="forbid")

    record: RecordMode = Field(
        default="uncertain",
        description="none: nothing is stored; uncertain: fallbacks, decisions near the threshold or the "
        "margin, hybrid escalations (and any decision that gets feedback); all: every decision.",
    )
    sample_rate: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Share of the decisions the mode selects that are written."
    )
    retention_days: float = Field(
        default=14.0, gt=0, le=3650, description="Decisions older than this are deleted (and never served)."
    )
    max_rows: int = Field(default=1_000_000, ge=1, description="Most decisions kept; the oldest go first.")
    url: SecretStr | None = Field(
        default=None,
        description="A PostgreSQL URL (postgresql://user:password@host/db) shared by several replicas; "
        "unset: SQLite at <index data dir>/decisions.sqlite3 (or `path`).",
    )
    path: Path | None = Field(default=None, description="The SQLite file when no URL is set.")
    queue_size: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Records waiting for the writer; beyond it they are dropped."
    )
    recent: int = Field(
        default=10_000,
        ge=0,
        le=1_000_000,
        description="Decisions not written (not selected or not sampled) kept in memory, so that feedback "
        "on them still records them; 0: feedback only on written decisions.",
    )
    band: float = Field(
        default=0.05, ge=0.0, le=1.0, description="uncertain: a best similarity this close to its threshold."
    )
    lead_band: float = Field(
        default=0.2, ge=0.0, le=1.0, description="uncertain: a winner leading the runner-up by under margin + this."
    )
    eval_file: str = Field(
        default="reviewed.jsonl",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.jsonl$",
        description="The evaluation file (in the evals directory) reviewed queries are held out in.",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            scheme = urlsplit(value.get_secret_value()).scheme
        except ValueError:
            scheme = ""
        if scheme not in _SCHEMES:
            # The scheme only: the URL may hold a password.
            raise ValueError(f"must be a postgresql:// (or sqlite://) URL, not {scheme or 'no scheme'!r}")
        return value

    @property
    def enabled(self) -> bool:
        """Anything is recorded at all."""
        return self.record != "none"

    @property
    def retention_s(self) -> float:
        """The retention period in seconds."""
        return self.retention_days * 86_400.0


def database_url(settings: DecisionLogSettings, data_dir: Path) -> str:
    """The SQLAlchemy URL of the log: the configured one (PostgreSQL through psycopg), else the
    SQLite file under the index's data directory."""
    if settings.url is not None:
        url = settings.url.get_secret_value()
        if url.startswith("postgresql://"):
            return "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url
    path = settings.path or Path(data_dir) / SQLITE_FILE
    return f"sqlite:///{Path(path).resolve()}"


def describe_url(url: str) -> str:
    """Where the log is, for messages: the file, or host and database, never a password."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return f"SQLite {parts.path.removeprefix('/') or ':memory:'}"
    host = parts.hostname or "local socket"
    return f"PostgreSQL {host}{f':{parts.port}' if parts.port else ''}{parts.path}"
