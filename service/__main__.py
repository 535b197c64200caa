"""`python -m service`: load the model and the live index, then serve.

Refuses to start, with a message saying what to do, when the index is missing, was built
with another model, or the bind address is unsafe. With `ROUTER_HTTP__WORKERS` above 1 this
process binds the port and supervises that many worker processes (`service.workers`), each
serving every route set with a model of its own.
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from router_core import RouterError
from router_core.settings import settings_problems
from service.app import create_app
from service.http_server import server_config
from service.observability import configure_logging
from service.security import check_bind
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


def build_services(settings: ServiceSettings) -> Services | None:
    """The object graph (loads the models, opens the indexes), or None after printing why not."""
    try:
        services = Services.build(settings)
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


def main() -> int:
    settings = load_settings()
    if settings is None:
        return 2
    configure_logging(settings.log.level, json_logs=settings.log.json_format)
    try:
        check_bind(settings.http.host, settings.auth, allow_insecure=settings.allow_insecure_bind)
    except RouterError as exc:
        print(f"error: the service cannot start: {exc}", file=sys.stderr)
        return 2
    if settings.http.workers > 1:
        from service.workers import supervise

        return supervise(settings)
    services = build_services(settings)
    if services is None:
        return 2
    app = create_app(services=services)
    uvicorn.Server(server_config(app, settings.http, log_config=None)).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
