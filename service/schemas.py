"""Wire types of the HTTP API (msgspec Structs); domain types stay in router_core."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from router_core import Decision, Neighbour


class _Request(msgspec.Struct, forbid_unknown_fields=True):
    pass


class ClassifyRequest(_Request):
    """One query to route."""

    query: str
    explain: bool = False


class BatchClassifyRequest(_Request):
    """Several queries, embedded in one forward pass."""

    queries: Annotated[list[str], msgspec.Meta(min_length=1)]
    explain: bool = False


class NeighbourOut(msgspec.Struct):
    """One stored example near the query."""

    text: str
    route: str
    similarity: float


class ClassifyResponse(msgspec.Struct, omit_defaults=True):
    """Where a query goes and why."""

    route: str
    fallback: bool
    score: float
    votes: dict[str, int]
    agent: str
    reason: str
    index_version: str
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


class RoutesResponse(msgspec.Struct):
    """The route table of the live index version."""

    index_version: str
    router: str
    default_route: str
    default_agent: dict[str, Any]
    k: int
    threshold: float
    routes: list[RouteOut]


class HealthResponse(msgspec.Struct):
    """Liveness or readiness, with the checks behind it."""

    status: str
    checks: dict[str, Any] = msgspec.field(default_factory=dict)


def neighbour_out(n: Neighbour) -> NeighbourOut:
    """Wire form of a neighbour, similarity rounded for readability."""
    return NeighbourOut(n.text, n.route, round(n.similarity, 4))


def classify_response(
    decision: Decision, agent: str, version: str, *, explain: bool
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
        neighbours=[neighbour_out(n) for n in decision.neighbours] if explain else None,
    )
