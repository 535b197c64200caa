"""GET /metrics: Prometheus text format."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency

from service.metrics import CONTENT_TYPE
from service.runtime import Runtime


@get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
async def metrics(runtime: NamedDependency[Runtime]) -> Response[bytes]:
    """Every metric of this process."""
    runtime.metrics.set_index(runtime.follower.current.manifest)
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)
