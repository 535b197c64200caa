"""The decision log's database, the same tests on SQLite and on a real PostgreSQL server:
records, retention, the row cap, feedback once per request, and migrations that build exactly
the declared schema."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from router_core.decision_log import DecisionRecord, Feedback
from router_core.decision_log.schema import metadata
from router_core.decision_log.store import DecisionStore, FeedbackRefused
from tests import log_fixtures

log_url = log_fixtures.log_url
postgres_server = log_fixtures.postgres_server
DAY = 86_400.0


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(request_id: str, at: float, **changes: object) -> DecisionRecord:
    base = DecisionRecord(
        request_id=request_id,
        item=0,
        created_at=at,
        caller="key-aaaa1111",
        route_set="default",
        route="maths",
        agent="maths-agent",
        fallback=False,
        reason="vote",
        decided_by="vote",
        score=0.61,
        runner_up="coding",
        margin=0.4,
        index_version="v1",
        model="all-MiniLM-L6-v2",
        latency_ms=4.2,
        text="what is 15% of 200",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_records_round_trip_and_a_request_id_keeps_its_first_record(log_url: str) -> None:
    """What is written is read back field for field; the same request id (and item) again
    changes nothing; a batch's items are separate rows."""
    clock = Clock()
    store = DecisionStore.open(log_url, retention_s=14 * DAY, clock=clock)
    first = record("r1", clock.now)
    store.insert_many([first, replace(first, route="coding"), replace(first, item=1, text="solve x")])
    got = store.get("r1")
    assert got is not None and got.record == first and got.feedback is None
    second = store.get("r1", 1)
    assert second is not None and second.record.text == "solve x"
    assert store.count() == 2
    store.close()


def test_retention_hides_old_decisions_and_purge_deletes_them(log_url: str) -> None:
    """A decision past the retention is never returned (feedback on it is 'not found') and the
    purge deletes it; newer ones stay."""
    clock = Clock()
    store = DecisionStore.open(log_url, retention_s=14 * DAY, clock=clock)
    store.insert_many([record("old", clock.now - 15 * DAY), record("new", clock.now - 13 * DAY)])
    assert store.get("old") is None and store.get("new") is not None
    with pytest.raises(FeedbackRefused) as refused:
        store.give_feedback("old", 0, Feedback("correct", None, "agent", None, clock.now), owner=None, unsaved=None)
    assert refused.value.kind == "not_found"
    assert store.purge(max_rows=1000) == 1
    assert store.count() == 1
    clock.now += 2 * DAY
    assert store.purge(max_rows=1000) == 1 and store.count() == 0
    store.close()


def test_row_cap_deletes_the_oldest_keeping_feedback_first(log_url: str) -> None:
    """Beyond max_rows the oldest decisions go, those without feedback before those with it."""
    clock = Clock()
    store = DecisionStore.open(log_url, retention_s=14 * DAY, clock=clock)
    store.insert_many([record(f"r{i}", clock.now - 100 + i) for i in range(6)])
    store.give_feedback("r0", 0, Feedback("wrong", "coding", "user", None, clock.now), owner=None, unsaved=None)
    assert store.purge(max_rows=3) == 3
    kept = sorted(r for r in ("r0", "r1", "r2", "r3", "r4", "r5") if store.get(r) is not None)
    assert kept == ["r0", "r4", "r5"]
    store.close()


def test_feedback_is_taken_once_and_only_from_the_owner(log_url: str) -> None:
    """Another key's request is 'not found'; the owner's feedback is recorded once: the same
    again is not recorded twice, a different verdict is a conflict; naming the route it went to
    is 'correct'; an unsaved decision is stored with its feedback."""
    clock = Clock()
    store = DecisionStore.open(log_url, retention_s=14 * DAY, clock=clock)
    store.insert_many([record("r1", clock.now)])
    wrong = Feedback("wrong", "coding", "agent", "key-aaaa1111", clock.now)
    with pytest.raises(FeedbackRefused) as other:
        store.give_feedback("r1", 0, wrong, owner="key-bbbb2222", unsaved=None)
    assert other.value.kind == "not_found"
    row, recorded = store.give_feedback("r1", 0, wrong, owner="key-aaaa1111", unsaved=None)
    assert recorded and row.feedback is not None and row.feedback.expected == "coding" and row.disagrees
    again, recorded_again = store.give_feedback("r1", 0, wrong, owner="key-aaaa1111", unsaved=None)
    assert not recorded_again and again.feedback == row.feedback
    with pytest.raises(FeedbackRefused) as conflict:
        store.give_feedback("r1", 0, Feedback("correct", None, "agent", None, clock.now), owner=None, unsaved=None)
    assert conflict.value.kind == "conflict"
    unsaved = record("r2", clock.now, recorded_as="feedback")
    same_route = Feedback("wrong", "maths", "user", None, clock.now)
    stored, recorded = store.give_feedback("r2", 0, same_route, owner=None, unsaved=unsaved)
    assert recorded and stored.feedback is not None and stored.feedback.verdict == "correct"
    assert store.labelled()[-1].record.request_id == "r2"
    store.close()


def test_review_queues_and_marks(log_url: str) -> None:
    """feedback holds disagreeing feedback, uncertain what was recorded as uncertain; a review
    mark takes a decision out of both and into `reviewed` (accepted or evaluated only)."""
    clock = Clock()
    store = DecisionStore.open(log_url, retention_s=14 * DAY, clock=clock)
    store.insert_many([record("a", clock.now, recorded_as="uncertain"), record("b", clock.now), record("c", clock.now)])
    store.give_feedback("b", 0, Feedback("wrong", "coding", "agent", None, clock.now), owner=None, unsaved=None)
    assert [r.record.request_id for r in store.queue("feedback")] == ["b"]
    assert [r.record.request_id for r in store.queue("uncertain")] == ["a"]
    ids = {r.record.request_id: r.id for r in store.queue("recent")} | {"b": store.queue("feedback")[0].id}
    assert store.review([ids["b"]], "accepted", "coding") == 1
    assert store.review([ids["a"]], "dismissed") == 1
    assert store.queue("feedback") == [] and store.queue("uncertain") == []
    assert [r.record.request_id for r in store.queue("reviewed")] == ["b"]
    assert [r.record.request_id for r in store.by_ids([ids["b"], 999_999])] == ["b"]
    store.close()


def test_migrations_build_exactly_the_declared_schema(log_url: str) -> None:
    """Alembic's upgrade yields the table SQLAlchemy declares (autogenerate finds no difference),
    and opening the log again is a no-op."""
    DecisionStore.open(log_url, retention_s=DAY).close()
    store = DecisionStore.open(log_url, retention_s=DAY)
    store.close()
    engine = sa.create_engine(log_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    assert diff == []
    assert version == "0001"
