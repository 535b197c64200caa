"""The decision log's database, behind one adapter: SQLite (one file, WAL) or PostgreSQL, the
same schema migrated by Alembic, SQLAlchemy Core for every statement. Database errors leave
this module as `LogUnavailable`.

Thread-safe: the service's one writer thread writes, request threads read; a `python -m
indexer review` process may write beside a running service (SQLite waits for the lock).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from router_core.decision_log.migrate import upgrade
from router_core.decision_log.records import (
    DecisionRecord,
    Feedback,
    Queue,
    RecordedTurn,
    ReviewState,
    StoredDecision,
)
from router_core.decision_log.schema import decisions
from router_core.decision_log.settings import describe_url
from router_core.errors import RouterError

_SQLITE_BUSY_MS = 10_000


class LogUnavailable(RouterError):
    """The decision log's database cannot be opened, migrated, read or written."""


class FeedbackRefused(RouterError):
    """Feedback that cannot be taken: no such decision (for this caller), or feedback that
    contradicts what was already given."""

    def __init__(self, message: str, *, kind: Literal["not_found", "conflict"]) -> None:
        super().__init__(message)
        self.kind = kind


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
    cursor.close()


class DecisionStore:
    """Recorded decisions, their feedback and review, older than the retention never returned."""

    def __init__(self, engine: Engine, *, retention_s: float, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self.retention_s = retention_s
        self._clock = clock
        self.where = describe_url(engine.url.render_as_string(hide_password=True))

    @classmethod
    def open(cls, url: str, *, retention_s: float, clock: Callable[[], float] = time.time) -> DecisionStore:
        """Connect and migrate to the current schema; LogUnavailable naming where, never a password."""
        where = describe_url(url)
        try:
            if url.startswith("sqlite"):
                path = sa.engine.make_url(url).database
                if path:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                engine = sa.create_engine(url, connect_args={"timeout": _SQLITE_BUSY_MS / 1000})
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = sa.create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)
            upgrade(engine)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise LogUnavailable(f"the decision log ({where}) cannot be opened: {_reason(exc)}") from exc
        return cls(engine, retention_s=retention_s, clock=clock)

    def close(self) -> None:
        """Release the connections."""
        self._engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise LogUnavailable(f"the decision log ({self.where}) failed: {_reason(exc)}") from exc

    def _fresh(self) -> sa.ColumnElement[bool]:
        return decisions.c.created_at >= self._clock() - self.retention_s

    @staticmethod
    def _of_set(route_set: str | None) -> list[sa.ColumnElement[bool]]:
        return [] if route_set is None else [decisions.c.route_set == route_set]

    # -- writing ------------------------------------------------------------------------------
    def insert_many(self, records: Sequence[DecisionRecord]) -> int:
        """Store records; a request id (and item) already stored keeps its first record."""
        if not records:
            return 0
        with self._tx() as conn:
            return _insert(conn, records)

    def give_feedback(
        self, request_id: str, item: int, feedback: Feedback, *, owner: str | None, unsaved: DecisionRecord | None
    ) -> tuple[StoredDecision, bool]:
        """Attach feedback to a stored decision (or to `unsaved`, stored now): (the row, whether
        this call recorded it). `owner`: only that caller's decisions (None: any). The first
        feedback stands: the same again changes nothing, a different one is a conflict."""
        with self._tx() as conn:
            row = self._row(conn, request_id, item)
            if row is None and unsaved is not None and _owned(unsaved.caller, owner):
                _insert(conn, [unsaved])
                row = self._row(conn, request_id, item)
            if row is None or not _owned(row.record.caller, owner):
                raise FeedbackRefused(
                    f"no recorded decision with request id {request_id!r}"
                    + (f" and item {item}" if item else "")
                    + " (unknown, expired, or made with another key)",
                    kind="not_found",
                )
            if feedback.verdict == "wrong" and feedback.expected == row.record.route:
                feedback = replace(feedback, verdict="correct", expected=None)  # "it should go where it went"
            if row.feedback is not None:
                same = (row.feedback.verdict, row.feedback.expected) == (feedback.verdict, feedback.expected)
                if same:
                    return row, False
                raise FeedbackRefused(
                    f"request {request_id!r} already has feedback ({_says(row.feedback)}); feedback is taken once",
                    kind="conflict",
                )
            conn.execute(
                decisions.update()
                .where(decisions.c.id == row.id)
                .values(
                    feedback=feedback.verdict,
                    expected_route=feedback.expected,
                    feedback_source=feedback.source,
                    feedback_caller=feedback.caller,
                    feedback_at=feedback.at,
                )
            )
            stored = self._row(conn, request_id, item)
            assert stored is not None
            return stored, True

    def review(self, ids: Iterable[int], state: ReviewState, route: str | None = None) -> int:
        """Mark decisions as reviewed (accepted into a route or an eval file, right, dismissed)."""
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        with self._tx() as conn:
            done = conn.execute(
                decisions.update()
                .where(decisions.c.id.in_(wanted), self._fresh())
                .values(review_state=state, review_route=route, reviewed_at=self._clock())
            )
            return int(done.rowcount or 0)

    def purge(self, max_rows: int) -> int:
        """Delete what retention and the row cap no longer allow: decisions past the retention,
        then the oldest beyond `max_rows` (those without feedback first)."""
        with self._tx() as conn:
            gone = conn.execute(decisions.delete().where(decisions.c.created_at < self._clock() - self.retention_s))
            deleted = int(gone.rowcount or 0)
            for only_without_feedback in (True, False):
                excess = int(conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar_one()) - max_rows
                if excess <= 0:
                    break
                oldest = sa.select(decisions.c.id).order_by(decisions.c.id).limit(excess)
                if only_without_feedback:
                    oldest = oldest.where(decisions.c.feedback.is_(None))
                gone = conn.execute(decisions.delete().where(decisions.c.id.in_(oldest.scalar_subquery())))
                deleted += int(gone.rowcount or 0)
        return deleted

    # -- reading ------------------------------------------------------------------------------
    def get(self, request_id: str, item: int = 0) -> StoredDecision | None:
        """The decision recorded for a request (and item), unless expired."""
        with self._tx() as conn:
            return self._row(conn, request_id, item)

    def by_ids(self, ids: Iterable[int], *, route_set: str | None = None) -> list[StoredDecision]:
        """Decisions by row id, in the order asked; unknown and expired ids (and, with
        `route_set`, those of other sets) are left out."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        where = [decisions.c.id.in_(wanted), self._fresh(), *self._of_set(route_set)]
        with self._tx() as conn:
            rows = conn.execute(sa.select(decisions).where(*where)).mappings()
            found = {int(r["id"]): _stored(r) for r in rows}
        return [found[i] for i in wanted if i in found]

    def queue(self, name: Queue, limit: int = 100, *, route_set: str | None = None) -> list[StoredDecision]:
        """A review queue, newest first: `feedback` (feedback that disagrees with the decision),
        `uncertain` (recorded as uncertain, no feedback), `reviewed` (accepted into a route or
        an eval file), `recent` (anything not reviewed and without feedback); with `route_set`,
        only that set's decisions."""
        c = decisions.c
        where: list[sa.ColumnElement[bool]] = [self._fresh(), *self._of_set(route_set)]
        if name == "feedback":
            where += [c.feedback == "wrong", c.review_state.is_(None)]
        elif name == "uncertain":
            where += [c.recorded_as == "uncertain", c.feedback.is_(None), c.review_state.is_(None)]
        elif name == "reviewed":
            where += [c.review_state.in_(("accepted", "evaluated"))]
        else:
            where += [c.feedback.is_(None), c.review_state.is_(None)]
        order = c.reviewed_at.desc() if name == "reviewed" else c.id.desc()
        with self._tx() as conn:
            rows = conn.execute(sa.select(decisions).where(*where).order_by(order).limit(limit)).mappings()
            return [_stored(r) for r in rows]

    def labelled(self, *, route_set: str | None = None) -> list[StoredDecision]:
        """Decisions whose right route is known (feedback naming it or saying correct, or a
        review), oldest first: what `python -m indexer review export` writes (with
        `route_set`, that set's only)."""
        c = decisions.c
        known = sa.or_(
            c.feedback == "correct",
            sa.and_(c.feedback == "wrong", c.expected_route.is_not(None)),
            c.review_state.in_(("accepted", "evaluated", "right")),
        )
        with self._tx() as conn:
            where = [self._fresh(), known, *self._of_set(route_set)]
            rows = conn.execute(sa.select(decisions).where(*where).order_by(c.id)).mappings()
            return [_stored(r) for r in rows]

    def count(self) -> int:
        """Rows stored (expired ones not yet purged included)."""
        with self._tx() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar_one())

    def _row(self, conn: Connection, request_id: str, item: int) -> StoredDecision | None:
        found = (
            conn.execute(
                sa.select(decisions).where(
                    decisions.c.request_id == request_id, decisions.c.item == item, self._fresh()
                )
            )
            .mappings()
            .first()
        )
        return _stored(found) if found is not None else None


def _owned(caller: str | None, owner: str | None) -> bool:
    return owner is None or caller == owner


def _says(feedback: Feedback) -> str:
    if feedback.verdict == "correct":
        return "correct"
    return f"should go to {feedback.expected}" if feedback.expected else "wrong"


def _insert(conn: Connection, records: Sequence[DecisionRecord]) -> int:
    rows = [_values(r) for r in records]
    if conn.dialect.name == "postgresql":
        stmt: Any = postgresql.insert(decisions).on_conflict_do_nothing(index_elements=["request_id", "item"])
    elif conn.dialect.name == "sqlite":
        stmt = sqlite.insert(decisions).on_conflict_do_nothing(index_elements=["request_id", "item"])
    else:  # pragma: no cover - the two supported dialects are above
        raise LogUnavailable(f"unsupported database {conn.dialect.name!r}")
    done = conn.execute(stmt, rows)
    return int(done.rowcount or 0)


def _values(r: DecisionRecord) -> dict[str, Any]:
    return {
        "request_id": r.request_id,
        "item": r.item,
        "created_at": r.created_at,
        "caller": r.caller,
        "route_set": r.route_set,
        "route": r.route,
        "agent": r.agent,
        "fallback": r.fallback,
        "reason": r.reason,
        "decided_by": r.decided_by,
        "score": r.score,
        "runner_up": r.runner_up,
        "margin": r.margin,
        "index_version": r.index_version,
        "model": r.model,
        "latency_ms": r.latency_ms,
        "text": r.text,
        "turns": json.dumps([[t.index, t.role, t.text, t.share] for t in r.turns]) if r.turns else None,
        "recorded_as": r.recorded_as,
        "llm_outcome": r.llm_outcome,
    }


def _stored(row: Any) -> StoredDecision:
    turns = (
        tuple(
            RecordedTurn(int(i), str(role), str(text), float(share))
            for i, role, text, share in json.loads(row["turns"])
        )
        if row["turns"]
        else ()
    )
    record = DecisionRecord(
        request_id=row["request_id"],
        item=int(row["item"]),
        created_at=float(row["created_at"]),
        caller=row["caller"],
        route_set=row["route_set"],
        route=row["route"],
        agent=row["agent"],
        fallback=bool(row["fallback"]),
        reason=row["reason"],
        decided_by=row["decided_by"],
        score=float(row["score"]),
        runner_up=row["runner_up"],
        margin=None if row["margin"] is None else float(row["margin"]),
        index_version=row["index_version"],
        model=row["model"],
        latency_ms=float(row["latency_ms"]),
        text=row["text"],
        turns=turns,
        recorded_as=row["recorded_as"],
        llm_outcome=row["llm_outcome"],
    )
    feedback = None
    if row["feedback"] is not None:
        feedback = Feedback(
            verdict=row["feedback"],
            expected=row["expected_route"],
            source=row["feedback_source"] or "agent",
            caller=row["feedback_caller"],
            at=float(row["feedback_at"] or 0.0),
        )
    return StoredDecision(
        id=int(row["id"]),
        record=record,
        feedback=feedback,
        review_state=row["review_state"],
        review_route=row["review_route"],
        reviewed_at=None if row["reviewed_at"] is None else float(row["reviewed_at"]),
    )


def _reason(exc: BaseException) -> str:
    """The driver's reason without the statement or its parameters (texts are user data)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).splitlines()[0] if str(orig or exc) else type(exc).__name__
    return text[:300]
