"""GET /healthz (alive) and GET /readyz (model loaded, index reachable and matching)."""

from __future__ import annotations

import asyncio

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec

from router_core import RouterError
from service.live_index import check_compatible
from service.runtime import Runtime
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
async def readyz(runtime: NamedDependency[Runtime]) -> Response[HealthResponse]:
    """Ready when the model is loaded, the index is reachable and built with that model."""
    checks: dict[str, object] = {"model": runtime.embedder.model_id}
    ok = True
    try:
        await asyncio.get_running_loop().run_in_executor(None, runtime.store.ping)
        served = runtime.follower.served
        index = served.index
        checks["model"] = served.embedder.model_id
        check_compatible(index, served.embedder)
        checks["index_version"] = index.version
        checks["index_model"] = index.manifest.model_id
    except RouterError as exc:
        ok = False
        checks["error"] = str(exc)
    if runtime.follower.last_error:
        checks["reload_error"] = runtime.follower.last_error
    status = "ready" if ok else "not ready"
    return Response(HealthResponse(status, checks), status_code=200 if ok else 503)
