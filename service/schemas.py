"""Wire types of the HTTP API (msgspec Structs); domain types stay in router_core."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import msgspec
from litestar.openapi import ResponseSpec
from msgspec import UNSET, UnsetType

from router_core import DEFAULT_SET, Decision, Neighbour


class _Request(msgspec.Struct, forbid_unknown_fields=True):
    pass


Query = Annotated[
    str,
    msgspec.Meta(
        description="The user's message. Must contain a non-space character; at most "
        "ROUTER_LIMITS__MAX_QUERY_CHARS characters.",
    ),
]


class MessageIn(msgspec.Struct):
    """One message of OpenAI's chat schema; fields outside it are ignored.

    `role`: system, developer, user, assistant, tool or function (legacy). `content`: a string,
    a list of parts (text parts are routed, joined; image, audio and file parts are passed on
    and counted, not routed) or null for an assistant message with `tool_calls`. A tool message
    names the call it answers (`tool_call_id`). Passed to the agent as sent.
    """

    role: str
    content: str | list[dict[str, Any]] | UnsetType | None = UNSET
    name: str | UnsetType = UNSET
    tool_calls: list[dict[str, Any]] | UnsetType = UNSET
    tool_call_id: str | UnsetType = UNSET
    function_call: dict[str, Any] | UnsetType = UNSET
    refusal: str | UnsetType | None = UNSET
    audio: dict[str, Any] | UnsetType | None = UNSET


def message_payloads(messages: Sequence[MessageIn]) -> list[dict[str, Any]]:
    """The messages as JSON objects, with the fields that were sent (null ones included)."""
    return [msgspec.to_builtins(m) for m in messages]


class ClassifyRequest(_Request):
    """One query, or one conversation (its last user message is routed, with the history)."""

    query: Query | None = None
    messages: list[MessageIn] | None = None
    explain: bool = False


class ConversationIn(_Request):
    """One conversation of a batch."""

    messages: list[MessageIn]


class BatchClassifyRequest(_Request):
    """Several queries, or several conversations, routed in one forward pass."""

    queries: Annotated[list[Query], msgspec.Meta(min_length=1)] | None = None
    conversations: Annotated[list[ConversationIn], msgspec.Meta(min_length=1)] | None = None
    explain: bool = False


class NeighbourOut(msgspec.Struct):
    """One stored example near the query."""

    text: str
    route: str
    similarity: float


class TurnOut(msgspec.Struct):
    """A message of the conversation that decided, and its share of the evidence."""

    index: int
    share: float


class LLMOut(msgspec.Struct, omit_defaults=True):
    """What the decision model did (modes llm and hybrid, when it was asked)."""

    model: str
    outcome: Literal["chosen", "none", "unrecognised", "timeout", "error", "unavailable"]
    latency_ms: float
    cached: bool = False
    detail: str | None = None


class ClassifyResponse(msgspec.Struct, omit_defaults=True):
    """Where a query goes and why; `skipped_parts` counts the non-text parts of `messages`
    (image, audio, file...) by type, which the router does not read."""

    route: str
    fallback: bool
    score: float
    votes: dict[str, int]
    agent: str
    reason: str
    index_version: str
    decided_by: str
    route_set: str
    turns: list[TurnOut] | None = None
    skipped_parts: dict[str, int] | None = None
    llm: LLMOut | None = None
    neighbours: list[NeighbourOut] | None = None


class BatchClassifyResponse(msgspec.Struct):
    """One result per query, in order, all from one index version per result."""

    results: list[ClassifyResponse]


class RouteOut(msgspec.Struct):
    """A route as operators see it (agent settings without secrets)."""

    name: str
    description: str
    examples: int
    threshold: float | None
    agent: dict[str, Any]


class ModelOut(msgspec.Struct):
    """The embedding model a version was built with, and the languages it was trained for."""

    id: str
    languages: list[str]  # ISO 639-1 codes; empty when too many to list or not known
    languages_note: str


class RoutesResponse(msgspec.Struct):
    """The route table of the live index version."""

    index_version: str
    router: str
    default_route: str
    default_agent: dict[str, Any]
    k: int
    threshold: float
    routes: list[RouteOut]
    margin: float = 0.0
    threshold_mode: str = "neighbour"
    vote: str = "count"
    model: ModelOut | None = None
    route_set: str = DEFAULT_SET


class HealthResponse(msgspec.Struct):
    """Liveness or readiness, with the checks behind it."""

    status: str
    checks: dict[str, Any] = msgspec.field(default_factory=dict)


def neighbour_out(n: Neighbour) -> NeighbourOut:
    """Wire form of a neighbour, similarity rounded for readability."""
    return NeighbourOut(n.text, n.route, round(n.similarity, 4))


def classify_response(
    decision: Decision,
    agent: str,
    version: str,
    *,
    explain: bool,
    llm: LLMOut | None = None,
    skipped_parts: Mapping[str, int] | None = None,
    route_set: str = DEFAULT_SET,
) -> ClassifyResponse:
    """Wire form of a decision."""
    return ClassifyResponse(
        route=decision.route,
        fallback=decision.fallback,
        score=round(decision.score, 4),
        votes=dict(decision.vote_counts),
        agent=agent,
        reason=decision.reason,
        index_version=version,
        decided_by=decision.decided_by,
        route_set=route_set,
        turns=[TurnOut(t.index, t.share) for t in decision.turns] or None,
        skipped_parts=dict(skipped_parts) if skipped_parts else None,
        llm=llm,
        neighbours=[neighbour_out(n) for n in decision.neighbours] if explain else None,
    )


class ProblemDetails(msgspec.Struct):
    """RFC 9457 problem details; extra members (field, limit, errors...) may follow."""

    type: str
    title: str
    status: int
    detail: str


PROBLEM_DESCRIPTIONS = {
    400: "Bad input: malformed or too deeply nested JSON, unknown or mistyped fields, empty or too long "
    "query, batch too large, more than one Authorization header",
    401: "Missing or invalid API key",
    403: "Valid key without the needed right (an admin endpoint, a route set it is not given); a browser "
    "cross-origin write; without keys, a Host that is not a loopback name",
    404: "Unknown path, model or route set",
    409: "Conflict with work in progress",
    413: "Request body too large",
    415: "The body is not sent as application/json",
    422: "Routes invalid",
    429: "Rate limit, or the failed-authentication limit of the address, exceeded (see Retry-After)",
    502: "The agent's LLM backend failed",
    503: "Index or model unavailable (of the route set)",
    504: "The agent's LLM backend timed out",
}


def problem_responses(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem-details responses an operation may return."""
    return {
        code: ResponseSpec(
            data_container=ProblemDetails,
            media_type="application/problem+json",
            description=PROBLEM_DESCRIPTIONS[code],
            generate_examples=False,
        )
        for code in codes
    }
