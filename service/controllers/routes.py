"""GET /v1/routes: the live route table of a route set (`?set=`), without secrets."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from router_core import public_view
from router_core.embedding import languages_of
from service.schemas import ModelOut, RouteOut, RoutesResponse, problem_responses
from service.services import RouteSetServices


@get(
    "/v1/routes",
    tags=["routes"],
    summary="List routes of the live index version",
    responses=problem_responses(401, 403, 404, 429, 503),
)
async def list_routes(route_set: NamedDependency[RouteSetServices]) -> RoutesResponse:
    """Routes with example counts, thresholds and agent names; the decision parameters the
    playground draws (k, threshold, margin, threshold mode, vote weighting); the model the
    version was built with and its languages."""
    index = route_set.follower.current
    table = index.table
    languages = languages_of(index.manifest.model_id)
    return RoutesResponse(
        index_version=index.version,
        router=table.name,
        default_route=table.params.default_route,
        default_agent=public_view(table.default_agent),
        k=table.params.k,
        threshold=table.params.threshold,
        routes=[
            RouteOut(r.name, r.description, len(r.examples), r.threshold, public_view(r.agent)) for r in table.routes
        ],
        margin=table.params.margin,
        threshold_mode=table.params.threshold_mode,
        vote=table.params.vote,
        model=ModelOut(index.manifest.model_id, list(languages.codes), languages.note),
        route_set=route_set.name,
    )
