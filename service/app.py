"""The Litestar app factory."""

from __future__ import annotations

import asyncio

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from service.controllers.answer import AnswerController
from service.controllers.chat import ChatController
from service.controllers.classify import ClassifyController
from service.controllers.health import healthz, readyz
from service.controllers.routes import list_routes
from service.errors import EXCEPTION_HANDLERS
from service.runtime import Runtime
from service.settings import ServiceSettings

__all__ = ["create_app"]


def _runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def create_app(settings: ServiceSettings | None = None, *, runtime: Runtime | None = None) -> Litestar:
    """Build the app. Without `runtime`, start-up loads the model and the live index itself.

    The app owns the runtime: it is stopped (index and store closed) at shutdown.
    """
    config = runtime.settings if runtime is not None else (settings or ServiceSettings())

    async def start(app: Litestar) -> None:
        rt = runtime or await asyncio.get_running_loop().run_in_executor(None, Runtime.build, config)
        await rt.start()
        app.state.runtime = rt

    async def stop(app: Litestar) -> None:
        rt: Runtime | None = app.state.get("runtime")
        if rt is not None:
            await rt.stop()

    return Litestar(
        route_handlers=[
            ClassifyController,
            AnswerController,
            ChatController,
            list_routes,
            healthz,
            readyz,
        ],
        dependencies={"runtime": Provide(_runtime, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        on_startup=[start],
        on_shutdown=[stop],
        request_max_body_size=config.limits.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Semantic Router",
            version="0.1.0",
            description="Routes each request to the right specialist agent.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin(), ScalarRenderPlugin()],
        ),
    )
