"""The Review tab's endpoints (admin): the decision log's queues and one action per item.

GET /admin/review?queue=feedback|uncertain|neighbours|reviewed, POST /admin/review/preview (the
diff and the guard's figures), POST /admin/review/accept (save what was previewed), POST
/admin/review/mark (right, dismissed). Texts are user data: only the admin sees them.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, Literal, TypeVar

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from router_core.decision_log.store import LogUnavailable
from router_core.review import Figures, GuardReport, Moved
from router_core.review.plan import Change
from service.controllers.feedback import LogDown
from service.decision_log.log import LogDisabled
from service.errors import ServiceError
from service.guards import require_json
from service.review import Entry, QueueName, ReviewDesk
from service.schemas import problem_responses

T = TypeVar("T")
MAX_ID = 2**53
Ids = Annotated[
    list[Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]], msgspec.Meta(min_length=1, max_length=200)
]  # unknown ids are 404
RouteName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class LogOff(ServiceError):
    """The decision log records nothing, so there is nothing to review."""

    status = 409
    title = "Decision log off"


class FeedbackOut(msgspec.Struct):
    """What a caller said."""

    verdict: str
    expected: str | None
    source: str


class NearOut(msgspec.Struct):
    """The misroute an entry is near, and the route the entry would take if it were added."""

    anchor_id: int
    anchor_text: str
    anchor_route: str
    similarity: float
    now: str
    if_added: str


class LiveOut(msgspec.Struct):
    """The live version's decision for the entry's query now."""

    route: str
    fallback: bool
    score: float
    index_version: str


class TurnOut(msgspec.Struct):
    """A deciding message of a conversation."""

    index: int
    role: str
    text: str
    share: float


class ReviewItemOut(msgspec.Struct):
    """A logged decision in a review queue."""

    id: int
    request_id: str
    item: int
    created_at: str
    text: str
    route: str
    agent: str
    fallback: bool
    reason: str
    decided_by: str
    score: float
    runner_up: str | None
    margin: float | None
    index_version: str
    recorded_as: str
    turns: list[TurnOut]
    feedback: FeedbackOut | None
    review_state: str | None
    review_route: str | None
    near: NearOut | None = None
    live: LiveOut | None = None


class QueueOut(msgspec.Struct):
    """One review queue, newest first."""

    queue: str
    items: list[ReviewItemOut]


class PreviewIn(msgspec.Struct, forbid_unknown_fields=True):
    """Decisions to add as examples of a route (`example`) or to the evaluation file (`eval`);
    the route defaults to the one their feedback names."""

    ids: Ids
    action: Literal["example", "eval"]
    route: RouteName | None = None


class AcceptIn(msgspec.Struct, forbid_unknown_fields=True):
    """A previewed change to save, with the preview's token."""

    ids: Ids
    action: Literal["example", "eval"]
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    route: RouteName | None = None


class MarkIn(msgspec.Struct, forbid_unknown_fields=True):
    """Decisions to mark as right or to dismiss."""

    ids: Ids
    state: Literal["right", "dismissed"]


class FiguresOut(msgspec.Struct):
    """Evaluation figures on one side of a change."""

    queries: int
    accuracy: float
    in_scope_accuracy: float
    fallback_recall: float
    fallback_precision: float


class MovedOut(msgspec.Struct):
    """A query and its decision before and after the change."""

    text: str
    label: str
    before: str
    after: str


class GuardOut(msgspec.Struct):
    """The guard against overfitting: the change's effect before saving."""

    summary: str
    fixes: int
    breaks: int
    eval_before: FiguresOut
    eval_after: FiguresOut
    fixed: list[MovedOut]
    unfixed: list[MovedOut]
    broken: list[MovedOut]
    mended: list[MovedOut]


class PreviewOut(msgspec.Struct):
    """What saving would write, and its effect."""

    action: str
    route: str
    ids: list[int]
    file: str
    diff: str
    changed: bool
    rewritten: bool
    added: list[str]
    token: str
    guard: GuardOut | None


class AcceptOut(msgspec.Struct):
    """What was saved; re-index to serve it."""

    action: str
    route: str
    file: str
    added: list[str]
    marked: int
    next: str


class MarkOut(msgspec.Struct):
    """How many decisions were marked."""

    marked: int


async def _call(call: Awaitable[T]) -> T:
    try:
        return await call
    except LogDisabled as exc:
        raise LogOff(str(exc)) from None
    except LogUnavailable as exc:
        raise LogDown(str(exc)) from None


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def item_out(entry: Entry) -> ReviewItemOut:
    """Wire form of a queue entry."""
    row, r = entry.decision, entry.decision.record
    fb = row.feedback
    near, live = entry.near, entry.live
    return ReviewItemOut(
        id=row.id,
        request_id=r.request_id,
        item=r.item,
        created_at=_iso(r.created_at),
        text=r.text,
        route=r.route,
        agent=r.agent,
        fallback=r.fallback,
        reason=r.reason,
        decided_by=r.decided_by,
        score=round(r.score, 4),
        runner_up=r.runner_up,
        margin=None if r.margin is None else round(r.margin, 4),
        index_version=r.index_version,
        recorded_as=r.recorded_as,
        turns=[TurnOut(t.index, t.role, t.text, t.share) for t in r.turns],
        feedback=FeedbackOut(fb.verdict, fb.expected, fb.source) if fb is not None else None,
        review_state=row.review_state,
        review_route=row.review_route,
        near=NearOut(near.anchor_id, near.anchor_text, near.anchor_route, near.similarity, near.now, near.if_added)
        if near is not None
        else None,
        live=LiveOut(live.route, live.fallback, live.score, live.version) if live is not None else None,
    )


def _figures(f: Figures) -> FiguresOut:
    return FiguresOut(f.queries, f.accuracy, f.in_scope_accuracy, f.fallback_recall, f.fallback_precision)


def _moved(items: tuple[Moved, ...]) -> list[MovedOut]:
    return [MovedOut(m.text, m.label, m.before, m.after) for m in items]


def guard_out(g: GuardReport) -> GuardOut:
    """Wire form of the guard's report."""
    return GuardOut(
        summary=g.summary,
        fixes=len(g.fixed),
        breaks=len(g.broken),
        eval_before=_figures(g.eval_before),
        eval_after=_figures(g.eval_after),
        fixed=_moved(g.fixed),
        unfixed=_moved(g.unfixed),
        broken=_moved(g.broken),
        mended=_moved(g.mended),
    )


def preview_out(p: Change) -> PreviewOut:
    """Wire form of a preview."""
    e = p.edit
    return PreviewOut(
        action=p.action,
        route=p.route,
        ids=list(p.ids),
        file=e.label,
        diff=e.diff,
        changed=e.changed,
        rewritten=e.rewritten,
        added=list(e.added),
        token=p.token,
        guard=guard_out(p.guard) if p.guard is not None else None,
    )


class ReviewController(Controller):
    """Review logged decisions and turn misroutes into examples or held-out evaluation queries."""

    path = "/admin/review"
    tags = ("review",)
    guards = [require_json]  # noqa: RUF012  (Litestar's declared class attribute)

    @get("/", summary="A review queue", responses=problem_responses(400, 401, 403, 404, 409, 503))
    async def queue(
        self,
        review_desk: NamedDependency[ReviewDesk],
        queue: Annotated[QueueName, QueryParameter(name="queue")] = "feedback",
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=200)] = 50,
    ) -> QueueOut:
        """feedback: feedback that disagrees with the decision; uncertain: decisions recorded as
        uncertain; neighbours: logged queries nearest to a misroute and where each would go if the
        misroute were added; reviewed: accepted queries decided again on the live version."""
        entries = await _call(review_desk.queue(queue, limit))
        return QueueOut(queue, [item_out(e) for e in entries])

    @post(
        "/preview",
        status_code=200,
        summary="What accepting would write",
        responses=problem_responses(400, 401, 403, 404, 409, 503),
    )
    async def preview(self, data: JSONBody[PreviewIn], review_desk: NamedDependency[ReviewDesk]) -> PreviewOut:
        """The file's diff and, for examples, the effect on the evaluation files and the reviewed
        queries ("this change fixes N reviewed queries and breaks M evaluation queries")."""
        return preview_out(await _call(review_desk.preview(data.ids, data.action, data.route)))

    @post(
        "/accept",
        status_code=200,
        summary="Save a previewed change",
        responses=problem_responses(400, 401, 403, 404, 409, 503),
    )
    async def accept(self, data: JSONBody[AcceptIn], review_desk: NamedDependency[ReviewDesk]) -> AcceptOut:
        """Write the change exactly as previewed (409 if anything changed since) and mark the
        decisions reviewed; re-index to serve it."""
        done = await _call(review_desk.accept(data.ids, data.action, data.route, data.token))
        return AcceptOut(
            action=done.action,
            route=done.route,
            file=done.edit.label,
            added=list(done.edit.added),
            marked=len(done.ids),
            next="re-index (POST /admin/reindex, or Re-index now on the Index tab) to serve the change"
            if done.action == "example"
            else "evaluate or calibrate with the evaluation file",
        )

    @post(
        "/mark",
        status_code=200,
        summary="Mark decisions right or dismiss them",
        responses=problem_responses(400, 401, 403, 404, 409, 503),
    )
    async def mark(self, data: JSONBody[MarkIn], review_desk: NamedDependency[ReviewDesk]) -> MarkOut:
        """Mark as right (the decision stands) or dismiss (nothing to learn)."""
        return MarkOut(await _call(review_desk.mark(data.ids, data.state)))
