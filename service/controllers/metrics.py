"""GET /metrics: Prometheus text format."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency

from service.metrics import CONTENT_TYPE, Metrics
from service.served_sets import ServedSets


@get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
async def metrics(
    served_sets: NamedDependency[ServedSets], service_metrics: NamedDependency[Metrics]
) -> Response[bytes]:
    """Every metric of this process; the index series name each route set's served version."""
    for name in served_sets.names:
        services = served_sets.serving.get(name)
        view = service_metrics.for_set(name)
        if services is None:
            view.forget_set()
        else:
            view.set_index(services.follower.current.manifest)
    return Response(service_metrics.render(), media_type=CONTENT_TYPE)
