"""`python -m service`: load the model and the live index, then serve.

Refuses to start, with a message saying what to do, when the index is missing, was built
with another model, or the bind address is unsafe.
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


def main() -> int:
    try:
        settings = ServiceSettings()
    except ValueError as exc:  # pydantic's ValidationError and pydantic-settings' SettingsError
        lines = "\n".join(f"  - {line}" for line in settings_problems(exc, ServiceSettings))
        print(f"error: the service cannot start: invalid settings:\n{lines}", file=sys.stderr)
        return 2
    configure_logging(settings.log.level, json_logs=settings.log.json_format)
    try:
        check_bind(settings.http.host, settings.auth, allow_insecure=settings.allow_insecure_bind)
        services = Services.build(settings)
    except RouterError as exc:
        print(f"error: the service cannot start: {exc}", file=sys.stderr)
        return 2
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
    app = create_app(services=services)
    uvicorn.Server(server_config(app, settings.http, log_config=None)).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
