"""GET /v1/routes/{name}/examples: a route's examples with the live hygiene check."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath

from service.route_examples import RouteExamples
from service.schemas import problem_responses


class NearerOut(msgspec.Struct):
    """The nearest example of another route, nearer than the example's own route's nearest."""

    route: str
    text: str
    similarity: float


class ExampleOut(msgspec.Struct):
    """One example; `nearer` is set when another route's example is closer than its own's."""

    text: str
    own_similarity: float | None
    nearer: NearerOut | None


class RouteExamplesResponse(msgspec.Struct):
    """A route's examples in the served version, in route-file order."""

    index_version: str
    route: str
    examples: list[ExampleOut]
    nearer_elsewhere: int  # examples whose nearest other-route example is closer than their own


@get(
    "/v1/routes/{name:str}/examples",
    tags=["routes"],
    summary="A route's examples, each with its nearest other-route example when that is closer",
    responses=problem_responses(401, 403, 404, 429, 503),
)
async def route_examples(name: FromPath[str], route_examples: NamedDependency[RouteExamples]) -> RouteExamplesResponse:
    """From the served version's stored vectors (nothing is embedded): every example of the
    route with the cosine similarity of its nearest example of the same route, and the nearest
    example of another route when that one is nearer (the hygiene check of
    `python -m indexer hygiene`, by neighbour)."""
    found = await route_examples.examples(name)
    out = [
        ExampleOut(
            e.text,
            None if e.own_similarity is None else round(e.own_similarity, 4),
            None if e.nearer is None else NearerOut(e.nearer.route, e.nearer.text, round(e.nearer.similarity, 4)),
        )
        for e in found.examples
    ]
    return RouteExamplesResponse(found.index_version, found.route, out, sum(e.nearer is not None for e in out))
