"""The decision log: what the router decided for real traffic, what callers said about it, and
what a reviewer did with it, in one table on SQLite (embedded, the default) or PostgreSQL.

Shared by the service (which records and takes feedback) and the indexer (`python -m indexer
review`); imports no web framework and no LLM client. The database adapter is
`router_core.decision_log.store` (imported where used: SQLAlchemy and Alembic stay out of the
processes that never open the log).
"""

from router_core.decision_log.records import (
    DEFAULT_ROUTE_SET,
    QUEUES,
    DecisionRecord,
    Feedback,
    Queue,
    RecordedAs,
    RecordedTurn,
    ReviewState,
    StoredDecision,
    Verdict,
)
from router_core.decision_log.settings import DecisionLogSettings, RecordMode, database_url

__all__ = [
    "DEFAULT_ROUTE_SET",
    "QUEUES",
    "DecisionLogSettings",
    "DecisionRecord",
    "Feedback",
    "Queue",
    "RecordMode",
    "RecordedAs",
    "RecordedTurn",
    "ReviewState",
    "StoredDecision",
    "Verdict",
    "database_url",
]
