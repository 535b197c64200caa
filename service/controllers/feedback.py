"""POST /v1/feedback: say whether a routed request went to the right route, by its request id.

Feedback comes from the calling agent or an end user's thumbs-down: `correct: true`, or the
route it should have gone to (`route`, or `default` for the default route), or `correct: false`
alone when the right route is unknown. A route is checked against the route set the request
was routed in. An API key may give feedback only on its own requests
(the admin token on any); a request id made with another key is answered like an unknown one
(404), so ids cannot be probed. The first feedback on a request stands: the same again is 200
and changes nothing, a different one is 409.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from router_core import RouteTable
from router_core.decision_log import Feedback
from router_core.decision_log.store import FeedbackRefused, LogUnavailable
from service.decision_log import DecisionLog
from service.decision_log.log import LogDisabled
from service.errors import ServiceError
from service.schemas import problem_responses
from service.security import KeyRing, key_id
from service.served_sets import ServedSets

T = TypeVar("T")
DEFAULT = "default"


class FeedbackNotFound(ServiceError):
    """No recorded decision with that request id for this caller (or the log is off)."""

    status = 404
    title = "Decision not found"


class FeedbackConflict(ServiceError):
    """The request already has different feedback."""

    status = 409
    title = "Feedback already given"


class InvalidFeedback(ServiceError):
    """A feedback body that says nothing, or names no route."""

    status = 400
    title = "Invalid feedback"


class LogDown(ServiceError):
    """The decision log's database cannot be reached."""

    status = 503
    title = "Decision log unavailable"


RequestId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description="The X-Request-ID of the routed request (returned in its response headers).",
    ),
]


class FeedbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Feedback on one routed request: `correct`, or the route it should have gone to."""

    request_id: RequestId
    item: Annotated[int, msgspec.Meta(ge=0, le=100_000, description="The query's position in a batch (0).")] = 0
    correct: bool | None = None
    route: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    source: Literal["agent", "user"] = "agent"


class FeedbackResponse(msgspec.Struct):
    """The feedback as stored, and whether this call recorded it (false: given before)."""

    request_id: str
    item: int
    decided: str
    verdict: Literal["correct", "wrong"]
    expected: str | None
    recorded: bool


def caller_scope(request: Request[Any, Any, Any], keys: KeyRing) -> tuple[str | None, str | None]:
    """(the caller's key id, the owner whose decisions it may touch: None for any). Without
    keys, or with the admin token, any decision; with an API key, only its own."""
    if keys.public_open:
        return None, None
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    if keys.is_admin(token):
        return key_id(token), None
    return key_id(token), key_id(token)


async def log_call(call: Awaitable[T]) -> T:
    """Await a decision-log operation, its errors as problem details."""
    try:
        return await call
    except LogDisabled as exc:
        raise FeedbackNotFound(str(exc)) from None
    except FeedbackRefused as exc:
        if exc.kind == "conflict":
            raise FeedbackConflict(str(exc)) from None
        raise FeedbackNotFound(str(exc)) from None
    except LogUnavailable as exc:
        raise LogDown(str(exc)) from None


def verdict_of(data: FeedbackRequest, table: RouteTable | None) -> tuple[Literal["correct", "wrong"], str | None]:
    """What the body says: correct, or wrong with the route it should have gone to (or None),
    a route of `table` (the route table of the decision's set; needed when `route` is given)."""
    if data.correct is True:
        if data.route is not None:
            raise InvalidFeedback("send correct: true, or the route it should have gone to, not both", field="route")
        return "correct", None
    if data.route is None:
        if data.correct is None:
            raise InvalidFeedback("send correct (true or false) or the route it should have gone to", field="correct")
        return "wrong", None
    if table is None:  # as the decision log says it
        raise FeedbackNotFound(
            f"no recorded decision with request id {data.request_id!r}"
            + (f" and item {data.item}" if data.item else "")
            + " (unknown, expired, or made with another key)"
        )
    names = [r.name for r in table.routes]
    default = table.params.default_route
    if data.route in (DEFAULT, default):
        return "wrong", default
    if data.route not in names:
        raise InvalidFeedback(
            f"route {data.route!r} is not a route; expected one of {', '.join([*names, DEFAULT])}",
            field="route",
        )
    return "wrong", data.route


class FeedbackController(Controller):
    """Feedback on routed requests."""

    path = "/v1/feedback"
    tags = ("feedback",)

    @post(
        "/",
        status_code=200,
        summary="Say whether a routed request went to the right route",
        responses=problem_responses(400, 401, 404, 409, 429, 503),
    )
    async def feedback(
        self,
        data: JSONBody[FeedbackRequest],
        request: Request[Any, Any, Any],
        served_sets: NamedDependency[ServedSets],
        decisions: NamedDependency[DecisionLog],
    ) -> FeedbackResponse:
        """Record feedback once per request id (and batch item); idempotent."""
        caller, owner = caller_scope(request, request.app.state.services.keyring)
        table = None
        if data.route is not None and data.correct is not True:  # the route is one of the decision's set
            route_set = await log_call(decisions.route_set_of(data.request_id, data.item, owner=owner))
            table = served_sets.get(route_set).follower.current.table if route_set is not None else None
        verdict, expected = verdict_of(data, table)
        given = await log_call(
            decisions.give_feedback(
                data.request_id,
                data.item,
                Feedback(verdict, expected, data.source, caller, time.time()),
                owner=owner,
            )
        )
        stored = given.decision.feedback
        assert stored is not None
        return FeedbackResponse(
            request_id=data.request_id,
            item=data.item,
            decided=given.decision.record.route,
            verdict=stored.verdict,
            expected=stored.expected,
            recorded=given.recorded,
        )
