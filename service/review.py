"""The review desk: the decision log's queues, and the one action per item that closes the loop
from a misroute to a better route.

Queues: `feedback` (feedback that disagrees with the decision), `uncertain` (recorded as
uncertain), `neighbours` (logged queries nearest to a misroute, with the route each would take
if that misroute were added as an example of the route its feedback names), `reviewed`
(accepted into a route or an eval file, each decided again on the live version: before/after).

Actions: add as an example of a route (the route file through `router_core.examples_writer`:
comments and order kept, a diff and the guard's figures shown before saving), add to the
evaluation file (held out: never also an example), mark as right, dismiss. A change is saved
only as it was previewed (`token`); re-indexing stays the admin's own step.

One desk per route set: its queues hold that set's decisions only, its actions take only that
set's decisions (another set's ids are unknown, 404), and an accepted example goes into that
set's routes folder.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from router_core import Router, RouteRequest
from router_core.decision_log import ReviewState, StoredDecision
from router_core.embedding import Embedder
from router_core.examples_writer import EditRefused, apply
from router_core.pipeline import vote_only
from router_core.review import Baseline, baseline, nearby
from router_core.review.plan import Action, Change, Workspace, eval_queries, plan_change
from router_core.store import OpenIndex
from service.decision_log import DecisionLog
from service.errors import ServiceError
from service.live_index import IndexFollower
from service.route_set import RouteSet

T = TypeVar("T")
QueueName = Literal["feedback", "uncertain", "neighbours", "reviewed"]
_LOGGED_FOR_NEIGHBOURS = 300
_REVIEWED_FOR_GUARD = 200


class ReviewRefused(ServiceError):
    """A review action that cannot be done as asked (nothing was written)."""

    status = 409
    title = "Review action refused"


class ReviewInvalid(ServiceError):
    """A review request naming nothing to act on."""

    status = 400
    title = "Invalid review request"


class DecisionNotFound(ServiceError):
    """A decision id that is not (or no longer) in the log."""

    status = 404
    title = "Decision not found"


@dataclass(frozen=True)
class Near:
    """Why an entry is in the neighbours queue: the misroute it is near, and where it would go."""

    anchor_id: int
    anchor_text: str
    anchor_route: str
    similarity: float
    now: str
    if_added: str


@dataclass(frozen=True)
class Live:
    """How the live version decides an entry's query now."""

    route: str
    fallback: bool
    score: float
    version: str


@dataclass(frozen=True)
class Entry:
    """One item of a queue."""

    decision: StoredDecision
    near: Near | None = None
    live: Live | None = None


class ReviewDesk:
    """Queues and actions over the decision log, a route set's routes folder and the evals directory."""

    def __init__(
        self,
        log: DecisionLog,
        follower: IndexFollower,
        route_set: RouteSet,
        evals_dir: Path,
        *,
        batch_size: int,
    ) -> None:
        self._log = log
        self._follower = follower
        self._route_set = route_set
        self._evals_dir = evals_dir
        self._batch_size = batch_size
        self._space = Workspace(
            route_set.routes_dir, evals_dir, log.settings.eval_file, route_set.route_files.policy(), batch_size
        )
        self._writing = asyncio.Lock()
        self._baselines: dict[tuple[object, ...], Baseline] = {}

    @property
    def eval_file(self) -> Path:
        """Where reviewed queries are held out."""
        return self._evals_dir / self._log.settings.eval_file

    # -- queues -------------------------------------------------------------------------------
    async def queue(self, name: QueueName, limit: int) -> list[Entry]:
        """One queue, newest first."""
        own = self._route_set.name
        if name in ("feedback", "uncertain"):
            rows = await self._log.read(lambda s: s.queue(name, limit, route_set=own))
            return [Entry(r) for r in rows]
        if name == "reviewed":
            rows = await self._log.read(lambda s: s.queue("reviewed", limit, route_set=own))
            return await self._in_executor(lambda: self._decide_live(rows))
        anchors = await self._log.read(lambda s: s.queue("feedback", _REVIEWED_FOR_GUARD, route_set=own))
        logged = await self._log.read(lambda s: s.queue("recent", _LOGGED_FOR_NEIGHBOURS, route_set=own))
        return (await self._in_executor(lambda: self._neighbours(anchors, logged)))[:limit]

    def _decide_live(self, rows: Sequence[StoredDecision]) -> list[Entry]:
        if not rows:
            return []
        with self._follower.lease() as served:
            index, embedder = served.index, served.embedder
            # The vote on the reviewed query, through the pipeline the service routes with.
            requests = [RouteRequest.query(r.record.text) for r in rows]
            router = Router(index, embedder, batch_size=self._batch_size)
            decisions = router.route(requests, table=vote_only(index.table))
            return [
                Entry(r, live=Live(d.route, d.fallback, round(d.score, 4), index.version))
                for r, d in zip(rows, decisions, strict=True)
            ]

    def _neighbours(self, anchors: Sequence[StoredDecision], logged: Sequence[StoredDecision]) -> list[Entry]:
        with self._follower.lease() as served:
            names = {r.name for r in served.index.table.routes}
            usable = [a for a in anchors if a.feedback is not None and a.feedback.expected in names]
            pairs = [(a.record.text, a.feedback.expected or "") for a in usable if a.feedback is not None]
            found = nearby(served.index, served.embedder, pairs, [r.record.text for r in logged])
        return [
            Entry(
                logged[n.position],
                near=Near(usable[n.anchor].id, pairs[n.anchor][0], pairs[n.anchor][1], n.similarity, n.now, n.if_added),
            )
            for n in found
        ]

    # -- actions ------------------------------------------------------------------------------
    async def preview(self, ids: Sequence[int], action: Action, route: str | None) -> Change:
        """What saving would write, and (for examples) the guard's figures."""
        rows = await self._rows(ids)
        return await self._in_executor(lambda: self._plan(rows, action, route))

    async def accept(self, ids: Sequence[int], action: Action, route: str | None, token: str) -> Change:
        """Save the change previewed with `token` and mark the decisions reviewed."""
        rows = await self._rows(ids)
        async with self._writing:
            plan = await self._in_executor(lambda: self._plan(rows, action, route, with_guard=False))
            if plan.token != token:
                raise ReviewRefused(
                    f"{plan.edit.label} or the decisions changed since the preview; preview again", file=plan.edit.label
                )
            routes_dir = self._route_set.routes_dir if action == "example" else None
            policy = self._route_set.route_files.policy()
            try:
                await self._in_executor(lambda: apply(plan.edit, routes_dir=routes_dir, policy=policy))
            except EditRefused as exc:
                raise ReviewRefused(str(exc)) from None
            state: ReviewState = "accepted" if action == "example" else "evaluated"
            await self._log.run(lambda s: s.review(plan.ids, state, plan.route))
        return plan

    async def mark(self, ids: Sequence[int], state: Literal["right", "dismissed"]) -> int:
        """Mark decisions as right or dismissed; how many were marked."""
        rows = await self._rows(ids)
        return await self._log.run(lambda s: s.review([r.id for r in rows], state))

    async def _rows(self, ids: Sequence[int]) -> list[StoredDecision]:
        if not ids:
            raise ReviewInvalid("name at least one decision (ids)", field="ids")
        rows = await self._log.read(lambda s: s.by_ids(ids, route_set=self._route_set.name))
        missing = sorted(set(ids) - {r.id for r in rows})
        if missing:
            listed = ", ".join(map(str, missing))
            raise DecisionNotFound(f"no recorded decision with id {listed} (unknown, expired, or of another route set)")
        return rows

    def _plan(
        self, rows: Sequence[StoredDecision], action: Action, route: str | None, *, with_guard: bool = True
    ) -> Change:
        with self._follower.lease() as served:
            index, embedder = served.index, served.embedder
            evals = self._eval_baseline(index, embedder) if with_guard and action == "example" else None
            store = self._log.store
            own = self._route_set.name
            others = (
                store.queue("feedback", _REVIEWED_FOR_GUARD, route_set=own)
                if evals is not None and store is not None
                else []
            )
            try:
                return plan_change(rows, action, route, index, embedder, self._space, evals=evals, others=others)
            except EditRefused as exc:
                raise ReviewRefused(str(exc)) from None

    def _eval_baseline(self, index: OpenIndex, embedder: Embedder) -> Baseline:
        """The evaluation files decided on the served version, computed once per version and files."""
        files = sorted(self._evals_dir.glob("*.jsonl")) if self._evals_dir.is_dir() else []
        key = (index.version, *((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))
        found = self._baselines.get(key)
        if found is None:
            found = baseline(index, embedder, eval_queries(self._space.evals_dir), batch_size=self._batch_size)
            self._baselines = {key: found}
        return found

    async def _in_executor(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn)
