"""`python -m service`: load the model and the live index, then serve.

Refuses to start, with a message saying what to do, when the index is missing, was built
with another model, or the bind address is unsafe. With `ROUTER_HTTP__WORKERS` above 1 this
process binds the port and supervises that many worker processes (`service.workers`), each
serving every route set with a model of its own.
"""

from __future__ import annotations

import sys

import uvicorn

from router_core import RouterError
from service.app import create_app
from service.http_server import server_config
from service.observability import configure_logging
from service.security import check_bind
from service.startup import build_services, freeze_start_up_heap, load_settings


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
    freeze_start_up_heap()
    uvicorn.Server(server_config(app, settings.http, log_config=None)).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
