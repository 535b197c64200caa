"""Start-up shared by a single-process service and each worker process: read the settings,
build the object graph, say what is served; print why not and answer None."""

from __future__ import annotations

import gc
import logging
import sys

from router_core import RouterError
from router_core.settings import settings_problems
from service.services import Services
from service.settings import ServiceSettings

log = logging.getLogger("router.service")


def load_settings() -> ServiceSettings | None:
    """The settings from the environment, or None after printing every problem."""
    try:
        return ServiceSettings()
    except ValueError as exc:  # pydantic's ValidationError and pydantic-settings' SettingsError
        lines = "\n".join(f"  - {line}" for line in settings_problems(exc, ServiceSettings))
        print(f"error: the service cannot start: invalid settings:\n{lines}", file=sys.stderr)
        return None


def one_blas_thread() -> None:
    """Numpy's BLAS (the embedded index's scan, router_core.store.matrix) runs one thread in a
    serving process: the scan runs on the micro-batch's thread beside the forward pass, other
    requests and worker processes take the other cores, and an idle BLAS thread spins on its core
    for a while after each product (OpenBLAS's default)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def freeze_start_up_heap() -> int:
    """Leave the objects built at start-up (modules, the app, the models, the indexes: ~190,000
    in a process serving the shipped routes) out of the cyclic garbage collector's passes: a
    full pass over them stops every thread for ~100-160 ms on this 2-core machine, the event
    loop and the micro-batches included, whenever a request's allocations trigger one
    (`python -m bench.gc_pause`). They live as long as the process; freed by reference count
    as before (a re-index's old version too), only cycles among them are never collected.
    Called once the app is built, before serving; answers how many objects were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("start-up heap frozen: %d objects left out of the garbage collector's passes", frozen)
    return frozen


def build_services(settings: ServiceSettings, *, processes: int = 1) -> Services | None:
    """The object graph (loads the models, opens the indexes), or None after printing why not;
    `processes`: the worker processes serving together (`Services.build`)."""
    one_blas_thread()
    try:
        services = Services.build(settings, processes=processes)
    except RouterError as exc:
        print(f"error: the service cannot start: {exc}", file=sys.stderr)
        return None
    for name, route_set in services.sets.serving.items():
        served = route_set.admin.served
        log.info(
            "route set %s: serving index version %s with model %s on the %s backend (%d intra-op thread(s)) on %s:%d",
            name,
            served.index.version,
            served.embedder.model_id,
            served.embedder.backend,
            getattr(served.embedder, "threads", 0),
            settings.http.host,
            settings.http.port,
        )
    for name, why in services.sets.readiness().items():
        log.warning("route set %s cannot serve (the others do): %s", name, why["error"])
    return services
