"""GET /healthz (alive) and GET /readyz (model loaded, index reachable and matching); HEAD
of both answers the same status without a body, as load balancers ask."""

from __future__ import annotations

from litestar import Response, get, head
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec

from router_llm.decider import Decider
from service.index_admin import IndexAdmin
from service.schemas import HealthResponse


@get("/healthz", tags=["operations"], summary="Liveness")
async def healthz() -> HealthResponse:
    """The process is up and its event loop answers."""
    return HealthResponse("ok")


@get(
    "/readyz",
    tags=["operations"],
    summary="Readiness",
    responses={503: ResponseSpec(HealthResponse, description="Not ready: the checks say why")},
)
async def readyz(
    index_admin: NamedDependency[IndexAdmin], decider: NamedDependency[Decider]
) -> Response[HealthResponse]:
    """Ready when the model is loaded, the index is reachable and built with that model. With a
    decision model configured, `checks.decision_model` says how it is asked and how its last call
    went (it does not decide readiness: without it, hybrid keeps the vote and llm the default
    route); `/admin/index` has the details."""
    found = await index_admin.readiness()
    status = "ready" if found.ready else "not ready"
    checks = found.checks
    if decider.model:
        state = decider.status()
        out = state.output
        checks = {
            **checks,
            "decision_model": {
                "model": state.model,
                "output_mode": out.mode if out else None,
                "last_outcome": state.last_outcome,
                "last_error": state.last_error,
            },
        }
    return Response(HealthResponse(status, checks), status_code=200 if found.ready else 503)


@head("/healthz", tags=["operations"], summary="Liveness, status only")
async def healthz_head() -> None:
    """200 while the process is up."""


@head(
    "/readyz",
    tags=["operations"],
    summary="Readiness, status only",
    responses={503: ResponseSpec(None, description="Not ready")},
)
async def readyz_head(index_admin: NamedDependency[IndexAdmin]) -> Response[None]:
    """200 when ready, 503 when not; GET /readyz says why."""
    found = await index_admin.readiness()
    return Response(None, status_code=200 if found.ready else 503)
