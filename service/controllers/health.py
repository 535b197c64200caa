"""GET /healthz (alive) and GET /readyz (model loaded, index reachable and matching, per route
set); HEAD of both answers the same status without a body, as load balancers ask.

With several route sets, `checks.sets` has each set's checks: a set that cannot serve is named
there with why while the others serve (status `degraded`, still 200: taking the replica out
would stop the sets that serve); `not ready` (503) when no set is ready. The top-level checks are
the default set's, as with one set.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from litestar import Response, get, head
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec

from router_llm.decider import Decider
from service.schemas import HealthResponse
from service.served_sets import ServedSets


async def sets_readiness(sets: ServedSets) -> tuple[str, dict[str, Any]]:
    """The status (`ready`, `degraded` or `not ready`) and the checks of every set, by name."""
    serving = list(sets.serving.items())
    found = await asyncio.gather(*(services.admin.readiness() for _, services in serving))
    per_set: dict[str, dict[str, Any]] = {
        name: {"ready": r.ready, **r.checks} for (name, _), r in zip(serving, found, strict=True)
    }
    per_set.update(sets.readiness())
    ready = [name for name in sets.names if per_set.get(name, {}).get("ready")]
    if len(ready) == len(sets.names):
        return "ready", per_set
    return ("degraded" if ready else "not ready"), per_set


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
    served_sets: NamedDependency[ServedSets], decider: NamedDependency[Decider]
) -> Response[HealthResponse]:
    """Ready when the model is loaded, the index is reachable and built with that model, for
    every route set (`checks.sets`; `degraded` when some set cannot serve, naming it and why). With a
    decision model configured, `checks.decision_model` says how it is asked and how its last call
    went (it does not decide readiness: without it, hybrid keeps the vote and llm the default
    route); `/admin/index` has the details."""
    status, per_set = await sets_readiness(served_sets)
    default = {k: v for k, v in per_set.get(served_sets.default, {}).items() if k != "ready"}
    # `pid`: the process that answered (with several worker processes, which one).
    checks: dict[str, Any] = {**default, "default_set": served_sets.default, "sets": per_set, "pid": os.getpid()}
    if decider.model:
        state = decider.status()
        out = state.output
        checks["decision_model"] = {
            "model": state.model,
            "output_mode": out.mode if out else None,
            "last_outcome": state.last_outcome,
            "last_error": state.last_error,
        }
    return Response(HealthResponse(status, checks), status_code=503 if status == "not ready" else 200)


@head("/healthz", tags=["operations"], summary="Liveness, status only")
async def healthz_head() -> None:
    """200 while the process is up."""


@head(
    "/readyz",
    tags=["operations"],
    summary="Readiness, status only",
    responses={503: ResponseSpec(None, description="Not ready")},
)
async def readyz_head(served_sets: NamedDependency[ServedSets]) -> Response[None]:
    """200 when ready (or degraded: some set serves), 503 when not; GET /readyz says why."""
    status, _ = await sets_readiness(served_sets)
    return Response(None, status_code=503 if status == "not ready" else 200)
