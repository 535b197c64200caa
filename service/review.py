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
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from router_core.decision import decide_many
from router_core.decision_log import ReviewState, StoredDecision
from router_core.embedding import Embedder
from router_core.examples_writer import EditRefused, FileEdit, apply, plan_examples, plan_labelled
from router_core.labelled import OOS_LABEL, LabelledDataInvalid, LabelledQuery, parse_labelled
from router_core.review import Baseline, Candidate, GuardReport, baseline, guard, nearby
from router_core.store import OpenIndex
from service.decision_log import DecisionLog
from service.errors import ServiceError
from service.live_index import IndexFollower
from service.route_set import RouteSet

T = TypeVar("T")
Action = Literal["example", "eval"]
QueueName = Literal["feedback", "uncertain", "neighbours", "reviewed"]
_LOGGED_FOR_NEIGHBOURS = 300
_REVIEWED_FOR_GUARD = 200


class ReviewRefused(ServiceError):
    """A review action that cannot be done as asked (nothing was written)."""

    status = 409
    title = "Review action refused"


class ReviewInvalid(ServiceError):
    """A review request naming nothing to act on, or an unknown decision."""

    status = 400
    title = "Invalid review request"


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


@dataclass(frozen=True)
class Preview:
    """A change as it would be saved: the file's diff, the guard's figures and the token to save it."""

    action: Action
    route: str
    ids: tuple[int, ...]
    edit: FileEdit
    guard: GuardReport | None
    token: str


class ReviewDesk:
    """Queues and actions over the decision log, the routes directory and the evals directory."""

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
        self._writing = asyncio.Lock()
        self._baselines: dict[tuple[object, ...], Baseline] = {}

    @property
    def eval_file(self) -> Path:
        """Where reviewed queries are held out."""
        return self._evals_dir / self._log.settings.eval_file

    # -- queues -------------------------------------------------------------------------------
    async def queue(self, name: QueueName, limit: int) -> list[Entry]:
        """One queue, newest first."""
        if name in ("feedback", "uncertain"):
            rows = await self._log.read(lambda s: s.queue(name, limit))
            return [Entry(r) for r in rows]
        if name == "reviewed":
            rows = await self._log.read(lambda s: s.queue("reviewed", limit))
            return await self._in_executor(lambda: self._decide_live(rows))
        anchors = await self._log.read(lambda s: s.queue("feedback", _REVIEWED_FOR_GUARD))
        logged = await self._log.read(lambda s: s.queue("recent", _LOGGED_FOR_NEIGHBOURS))
        return (await self._in_executor(lambda: self._neighbours(anchors, logged)))[:limit]

    def _decide_live(self, rows: Sequence[StoredDecision]) -> list[Entry]:
        if not rows:
            return []
        with self._follower.lease() as served:
            index, embedder = served.index, served.embedder
            vectors = embedder.encode([r.record.text for r in rows], batch_size=self._batch_size)
            decisions = decide_many(index.searcher.search(vectors, index.table.params.k), index.table.params)
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
    async def preview(self, ids: Sequence[int], action: Action, route: str | None) -> Preview:
        """What saving would write, and (for examples) the guard's figures."""
        rows = await self._rows(ids)
        return await self._in_executor(lambda: self._plan(rows, action, route))

    async def accept(self, ids: Sequence[int], action: Action, route: str | None, token: str) -> Preview:
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
        rows = await self._log.read(lambda s: s.by_ids(ids))
        missing = sorted(set(ids) - {r.id for r in rows})
        if missing:
            raise ReviewInvalid(f"no recorded decision with id {', '.join(map(str, missing))} (unknown or expired)")
        return rows

    def _plan(
        self, rows: Sequence[StoredDecision], action: Action, route: str | None, *, with_guard: bool = True
    ) -> Preview:
        with self._follower.lease() as served:
            table = served.index.table
            default = table.params.default_route
            chosen = route or _expected(rows) or ""
            texts = [r.record.text for r in rows]
            try:
                if action == "example":
                    held_out = {q.text for q in self._eval_queries()}
                    leaked = [t for t in texts if " ".join(t.split()) in held_out]
                    if leaked:
                        raise EditRefused(
                            f"{leaked[0]!r} is in an evaluation file: held-out queries are never examples"
                        )
                    edit = plan_examples(
                        self._route_set.routes_dir, chosen, texts, self._route_set.route_files.policy()
                    )
                else:
                    examples = {e: r.name for r in table.routes for e in r.examples}
                    known = [t for t in texts if " ".join(t.split()) in examples]
                    if known:
                        raise EditRefused(
                            f"{known[0]!r} is an example of route {examples[' '.join(known[0].split())]!r}: "
                            "an evaluation query must be held out"
                        )
                    if chosen not in {r.name for r in table.routes} | {default, "default"}:
                        raise EditRefused(f"{chosen!r} is not a route; choose a route or default")
                    label = OOS_LABEL if chosen in (default, "default") else chosen
                    edit = plan_labelled(self.eval_file, [(t, label) for t in texts])
            except EditRefused as exc:
                raise ReviewRefused(str(exc)) from None
            report = None
            if action == "example" and with_guard:
                added = [Candidate(t, chosen) for t in edit.added]
                report = guard(
                    served.index,
                    served.embedder,
                    added,
                    self._eval_baseline(served.index, served.embedder),
                    self._reviewed_baseline(served.index, served.embedder, rows, chosen),
                )
            token = hashlib.sha256(
                "\n".join([action, chosen, *map(str, sorted(r.id for r in rows)), edit.after]).encode()
            ).hexdigest()[:32]
            return Preview(action, chosen, tuple(r.id for r in rows), edit, report, token)

    def _eval_queries(self) -> list[LabelledQuery]:
        """Every labelled query of the evals directory (files that do not parse are skipped)."""
        queries: list[LabelledQuery] = []
        for path in sorted(self._evals_dir.glob("*.jsonl")) if self._evals_dir.is_dir() else []:
            try:
                queries += parse_labelled(path.read_text(encoding="utf-8").splitlines(), where=path.name)
            except (OSError, UnicodeDecodeError, LabelledDataInvalid):
                continue
        return queries

    def _eval_baseline(self, index: OpenIndex, embedder: Embedder) -> Baseline:
        """The evaluation files decided on the served version, computed once per version and files."""
        files = sorted(self._evals_dir.glob("*.jsonl")) if self._evals_dir.is_dir() else []
        key = (index.version, *((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))
        found = self._baselines.get(key)
        if found is None:
            found = baseline(index, embedder, self._eval_queries(), batch_size=self._batch_size)
            self._baselines = {key: found}
        return found

    def _reviewed_baseline(
        self, index: OpenIndex, embedder: Embedder, rows: Sequence[StoredDecision], route: str
    ) -> Baseline:
        """The queries under review (labelled with `route`) and the other open misroutes whose
        feedback names a route, decided on the served version."""
        assert self._log.store is not None
        chosen = {r.id for r in rows}
        others = [
            r
            for r in self._log.store.queue("feedback", _REVIEWED_FOR_GUARD)
            if r.id not in chosen and r.feedback is not None and r.feedback.expected
        ]
        queries = [LabelledQuery(r.record.text, route) for r in rows]
        queries += [LabelledQuery(r.record.text, r.feedback.expected or "") for r in others if r.feedback]
        return baseline(index, embedder, queries, batch_size=self._batch_size)

    async def _in_executor(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn)


def _expected(rows: Sequence[StoredDecision]) -> str | None:
    """The route the rows' feedback names, if any does."""
    return next((r.feedback.expected for r in rows if r.feedback is not None and r.feedback.expected), None)
