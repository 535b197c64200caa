"""GET /metrics: Prometheus text format."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency

from service.metrics import CONTENT_TYPE, Metrics
from service.routing.stage import RoutingStage


@get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
async def metrics(routing: NamedDependency[RoutingStage], service_metrics: NamedDependency[Metrics]) -> Response[bytes]:
    """Every metric of this process."""
    service_metrics.set_index(routing.current.manifest)
    return Response(service_metrics.render(), media_type=CONTENT_TYPE)
