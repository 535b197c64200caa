"""The decision log as the service uses it: record routed requests (never waiting, never
failing them), keep the unrecorded ones in memory a while, and take feedback."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from router_core import RouteRequest
from router_core.decision_log import (
    DecisionLogSettings,
    DecisionRecord,
    Feedback,
    RecordedAs,
    RecordedTurn,
    StoredDecision,
)
from router_core.decision_log.store import DecisionStore
from service.decision_log.metrics import DecisionLogMetrics
from service.decision_log.policy import sampled, selection
from service.decision_log.writer import LogWriter
from service.routing.stage import Routed

log = logging.getLogger("router.decision_log")
T = TypeVar("T")


class LogDisabled(Exception):
    """The decision log records nothing (`ROUTER_DECISION_LOG__RECORD=none`)."""


@dataclass(frozen=True)
class FeedbackGiven:
    """The decision feedback was given on, and whether this call recorded it (False: the same
    feedback had been given before)."""

    decision: StoredDecision
    recorded: bool


class DecisionLog:
    """What the service records of its decisions, and the feedback on them."""

    def __init__(
        self,
        settings: DecisionLogSettings,
        store: DecisionStore | None,
        metrics: DecisionLogMetrics,
        *,
        max_query_chars: int,
        clock: Callable[[], float] = time.time,
        purge_every_s: float = 60.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self._max_chars = max_query_chars
        self._clock = clock
        self._writer = (
            LogWriter(
                store,
                metrics,
                capacity=settings.queue_size,
                max_rows=settings.max_rows,
                purge_every_s=purge_every_s,
            )
            if store is not None
            else None
        )
        self._recent: OrderedDict[tuple[str, int], DecisionRecord] = OrderedDict()
        self._recent_lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Anything is recorded."""
        return self.store is not None

    async def start(self) -> None:
        """Start the writer."""
        if self._writer is not None:
            self._writer.start()

    async def stop(self) -> None:
        """Write what is queued, stop the writer, close the database."""
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._writer.stop)
        if self.store is not None:
            self.store.close()

    # -- recording ----------------------------------------------------------------------------
    def record(
        self, items: Sequence[Routed], requests: Sequence[RouteRequest], *, request_id: str, caller: str | None
    ) -> None:
        """Record what the mode and sampling select; keep the rest in memory for feedback. Never
        raises: a request is answered whatever happens here."""
        if self._writer is None:
            return
        try:
            for position, (item, request) in enumerate(zip(items, requests, strict=True)):
                self._record_one(item, request, request_id, position, caller)
        except Exception:
            log.exception("decision log: recording failed (the request was answered)")

    def _record_one(
        self, item: Routed, request: RouteRequest, request_id: str, position: int, caller: str | None
    ) -> None:
        assert self._writer is not None
        table = item.index.table
        escalated = table.mode == "hybrid" and item.llm is not None
        why = selection(self.settings, item.decision, table.params, escalated=escalated)
        if why is not None and not sampled(request_id, position, self.settings.sample_rate):
            why = None
        record = self._build(item, request, request_id, position, caller, why or "feedback")
        if why is not None:
            self._writer.offer(record)
        elif self.settings.recent:
            with self._recent_lock:
                self._recent[(request_id, position)] = record
                while len(self._recent) > self.settings.recent:
                    self._recent.popitem(last=False)

    def _build(
        self,
        item: Routed,
        request: RouteRequest,
        request_id: str,
        position: int,
        caller: str | None,
        why: RecordedAs,
    ) -> DecisionRecord:
        d = item.decision
        runner_up = next((r for r in d.ranking if r != d.route), None)
        by_index = {t.index: t for t in request.turns}
        turns = tuple(
            RecordedTurn(t.index, by_index[t.index].role, self._cut(by_index[t.index].text), round(t.share, 4))
            for t in d.turns
            if t.index in by_index
        )
        llm_ms = item.llm.latency_ms if item.llm is not None and not item.llm.cached else 0.0
        return DecisionRecord(
            request_id=request_id,
            item=position,
            created_at=self._clock(),
            caller=caller,
            route_set=item.route_set,
            route=d.route,
            agent=item.index.table.agent_for(d.route).name,
            fallback=d.fallback,
            reason=d.reason,
            decided_by=d.decided_by,
            score=round(float(d.score), 6),
            runner_up=runner_up,
            margin=round(d.lead, 6) if math.isfinite(d.lead) else None,
            index_version=item.index.version,
            model=item.index.manifest.model_id,
            latency_ms=round(item.embed_ms + item.search_ms + llm_ms, 3),
            text=self._cut(request.text),
            turns=turns if len(request.turns) > 1 else (),
            recorded_as=why,
            llm_outcome=item.llm.outcome if item.llm is not None else None,
        )

    def _cut(self, text: str) -> str:
        return text[: self._max_chars]

    # -- feedback -----------------------------------------------------------------------------
    async def give_feedback(
        self, request_id: str, item: int, feedback: Feedback, *, owner: str | None
    ) -> FeedbackGiven:
        """Attach feedback to a decision (one still only in memory is recorded now); raises
        LogDisabled, or FeedbackRefused (not found, or a conflicting earlier feedback)."""
        with self._recent_lock:
            unsaved = self._recent.get((request_id, item))
        row, recorded = await self.run(
            lambda store: store.give_feedback(request_id, item, feedback, owner=owner, unsaved=unsaved)
        )
        if unsaved is not None:
            with self._recent_lock:
                self._recent.pop((request_id, item), None)
        if recorded:
            expected = "" if feedback.verdict == "correct" else (feedback.expected or "")
            self.metrics.feedback.labels(row.record.route, feedback.verdict, expected).inc()
        return FeedbackGiven(row, recorded)

    async def route_set_of(self, request_id: str, item: int, *, owner: str | None) -> str | None:
        """The route set a decision was made in (one still only in memory too), or None when
        there is no such decision for `owner` (None: any caller)."""
        with self._recent_lock:
            unsaved = self._recent.get((request_id, item))
        if unsaved is not None and (owner is None or unsaved.caller == owner):
            return unsaved.route_set
        row = await self.run(lambda store: store.get(request_id, item))  # after the records queued before it
        if row is None or (owner is not None and row.record.caller != owner):
            return None
        return row.record.route_set

    async def run(self, fn: Callable[[DecisionStore], T]) -> T:
        """Run a write on the writer thread (after the records queued before it) and await it."""
        if self._writer is None:
            raise LogDisabled("the decision log is off (ROUTER_DECISION_LOG__RECORD=none): nothing is recorded")
        return await asyncio.wrap_future(self._writer.call(fn))

    async def read(self, fn: Callable[[DecisionStore], T]) -> T:
        """Run a read on a worker thread."""
        if self.store is None:
            raise LogDisabled("the decision log is off (ROUTER_DECISION_LOG__RECORD=none): nothing is recorded")
        store = self.store
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(store))


@dataclass(frozen=True)
class RequestRecorder:
    """The decision log bound to one request: its id and caller (a key id, or None without keys)."""

    log: DecisionLog
    request_id: str
    caller: str | None

    def record(self, items: Sequence[Routed], requests: Sequence[RouteRequest]) -> None:
        """Record this request's decisions (one per query of a batch)."""
        self.log.record(items, requests, request_id=self.request_id, caller=self.caller)
