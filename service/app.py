"""The Litestar app factory."""

from __future__ import annotations

import asyncio

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from service.controllers.admin import AdminController
from service.controllers.answer import AnswerController
from service.controllers.chat import ChatController
from service.controllers.classify import ClassifyController
from service.controllers.health import healthz, readyz
from service.controllers.metrics import metrics
from service.controllers.routes import list_routes
from service.errors import EXCEPTION_HANDLERS
from service.guards import require_admin, require_api_key
from service.metrics import Metrics
from service.observability import RequestContext
from service.openapi import complete_schema
from service.runtime import Runtime
from service.settings import ServiceSettings

__all__ = ["create_app"]


def _runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def create_app(settings: ServiceSettings | None = None, *, runtime: Runtime | None = None) -> RequestContext:
    """Build the app (the Litestar app is `.app` of the returned ASGI wrapper). Without
    `runtime`, start-up loads the model and the live index itself.

    The app owns the runtime: it is stopped (index and store closed) at shutdown.
    """
    config = runtime.settings if runtime is not None else (settings or ServiceSettings())
    # Request metrics are recorded by middleware built before the runtime exists, so the
    # runtime adopts this app's registry.
    shared_metrics = runtime.metrics if runtime is not None else Metrics()

    async def start(app: Litestar) -> None:
        loop = asyncio.get_running_loop()
        rt = runtime if runtime is not None else await loop.run_in_executor(None, Runtime.build, config)
        rt.metrics = shared_metrics
        await rt.start()
        app.state.runtime = rt

    async def stop(app: Litestar) -> None:
        rt: Runtime | None = app.state.get("runtime")
        if rt is not None:
            await rt.stop()

    # The schema declares bearer auth only where the configuration requires it.
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    keyed, admin_keyed = bool(config.auth.api_keys), config.auth.admin_token is not None
    public = Router(
        path="/",
        route_handlers=[ClassifyController, AnswerController, ChatController, list_routes],
        guards=[require_api_key],
        security=bearer if keyed else None,
    )
    admin = Router(
        path="/",
        route_handlers=[AdminController],
        guards=[require_admin],
        security=bearer if admin_keyed or keyed else None,
    )
    cors = config.auth.cors_origins
    app = Litestar(
        route_handlers=[public, admin, healthz, readyz, metrics],
        dependencies={"runtime": Provide(_runtime, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,  # the process configures logging (JSON lines) in __main__
        cors_config=CORSConfig(allow_origins=cors) if cors else None,
        on_startup=[start],
        on_shutdown=[stop],
        request_max_body_size=config.limits.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Semantic Router",
            version="0.1.0",
            description="Routes each request to the right specialist agent.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin(), ScalarRenderPlugin()],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An API key (public endpoints) or the admin token (/admin). "
                        "Not required when the service runs without keys on loopback.",
                    )
                }
            ),
        ),
    )
    complete_schema(app, config.limits)
    return RequestContext(app, shared_metrics)
