"""What the decision log holds, as frozen values: a recorded decision, the feedback on it, and
the reviewer's action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["correct", "wrong"]
FeedbackSource = Literal["agent", "user"]
ReviewState = Literal["accepted", "evaluated", "right", "dismissed"]
RecordedAs = Literal["uncertain", "sampled", "feedback"]
DEFAULT_ROUTE_SET = "default"


@dataclass(frozen=True)
class RecordedTurn:
    """A conversation message that decided, as routed (cut to the query limit)."""

    index: int
    role: str
    text: str
    share: float


@dataclass(frozen=True)
class DecisionRecord:
    """One routed request (or one query of a batch, `item` its position) as it was decided.

    `caller` is the key id (`key-<hash8>`), never the key; None on a service without keys.
    `text` is the routed message cut to the query limit; `turns` the deciding messages of a
    conversation. `margin` is the winner's lead over `runner_up` (None without a runner-up).
    """

    request_id: str
    item: int
    created_at: float  # seconds since the epoch, UTC
    caller: str | None
    route_set: str
    route: str
    agent: str
    fallback: bool
    reason: str
    decided_by: str
    score: float
    runner_up: str | None
    margin: float | None
    index_version: str
    model: str
    latency_ms: float
    text: str
    turns: tuple[RecordedTurn, ...] = ()
    recorded_as: RecordedAs = "sampled"
    llm_outcome: str | None = None


@dataclass(frozen=True)
class Feedback:
    """What a caller said about one decision: right, or where it should have gone (`expected`:
    a route name, the default route's name, or None for "wrong, route unknown")."""

    verdict: Verdict
    expected: str | None
    source: FeedbackSource
    caller: str | None
    at: float


@dataclass(frozen=True)
class StoredDecision:
    """A row of the log: the record, its row id, any feedback and any review."""

    id: int
    record: DecisionRecord
    feedback: Feedback | None = None
    review_state: ReviewState | None = None
    review_route: str | None = None
    reviewed_at: float | None = None

    @property
    def disagrees(self) -> bool:
        """Feedback says the decision was wrong."""
        return self.feedback is not None and self.feedback.verdict == "wrong"


Queue = Literal["feedback", "uncertain", "reviewed", "recent"]
QUEUES: tuple[Queue, ...] = ("feedback", "uncertain", "reviewed", "recent")
"""The review queues, newest first in each."""
