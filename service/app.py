"""The Litestar app factory: the object graph is built once and handed to handlers by injection."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from litestar import Litestar, Request, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import QueryParameter

from router_core.settings import SET_NAME_PATTERN
from router_llm.decider import Decider
from router_llm.settings import LLMSettings
from service.agents import Answerer
from service.api_docs import SwaggerPage, docs_router
from service.controllers.admin import AdminController
from service.controllers.answer import AnswerController
from service.controllers.chat import ChatController
from service.controllers.classify import ClassifyController
from service.controllers.evaluation import eval_files, evaluate_queries
from service.controllers.feedback import FeedbackController
from service.controllers.health import healthz, healthz_head, readyz, readyz_head
from service.controllers.metrics import metrics
from service.controllers.review import ReviewController
from service.controllers.route_examples import route_examples
from service.controllers.routed import RouteCall
from service.controllers.routes import list_routes
from service.controllers.sets import SetAnswerController, SetClassifyController, list_sets
from service.controllers.ui import caller, ui_router
from service.decision_log import DecisionLog, RequestRecorder
from service.errors import EXCEPTION_HANDLERS
from service.evaluation import Evaluator
from service.guards import require_admin, require_api_key_and_json
from service.index_admin import IndexAdmin
from service.json_request import JSONRequest
from service.metrics import Metrics
from service.observability import RequestContext, request_id_var
from service.openapi import complete_schema
from service.review import ReviewDesk
from service.route_examples import RouteExamples
from service.routing.stage import RoutingStage
from service.security import KeyRing
from service.served_sets import ServedSets
from service.services import RouteSetServices, Services
from service.set_choice import SetChooser, choose_set
from service.settings import LimitSettings, ServiceSettings

__all__ = ["create_app"]


def _services(state: State) -> Services:
    services: Services = state.services
    return services


SetQuery = Annotated[
    str | None,
    QueryParameter(
        name="set",
        pattern=SET_NAME_PATTERN,
        description="The route set (ROUTER_ROUTE_SETS, or a folder of the routes root); default: the default set.",
    ),
]


def _dependencies() -> dict[str, Provide]:
    """The typed services handlers may ask for, by parameter name. The route set's pieces come
    from the set the request addresses (`service.set_choice`): the default set for `call` (the
    routing stage and what a routing endpoint needs: `RouteCall`; the path's set under
    /v1/sets/{set}, `_set_dependencies`), `?set=` for the others."""

    def route_set(request: Request[Any, Any, Any], set_name: SetQuery = None) -> RouteSetServices:
        return choose_set(request, set_name)

    def call(state: State, request: Request[Any, Any, Any]) -> RouteCall:
        return _route_call(state, request, choose_set(request, None).routing)

    def index_admin(route_set: NamedDependency[RouteSetServices]) -> IndexAdmin:
        return route_set.admin

    def route_examples(route_set: NamedDependency[RouteSetServices]) -> RouteExamples:
        return route_set.examples

    def evaluator(route_set: NamedDependency[RouteSetServices]) -> Evaluator:
        return route_set.evaluator

    def review_desk(route_set: NamedDependency[RouteSetServices]) -> ReviewDesk:
        return route_set.review

    def set_chooser(request: Request[Any, Any, Any]) -> SetChooser:
        return SetChooser(request)

    def answerer(state: State) -> Answerer:
        return _services(state).answerer

    def limits(state: State) -> LimitSettings:
        return _services(state).settings.limits

    def log_queries(state: State) -> bool:
        return _services(state).settings.log.queries

    def llm_settings(state: State) -> LLMSettings:
        return _services(state).settings.llm

    def service_metrics(state: State) -> Metrics:
        return _services(state).metrics

    def keyring(state: State) -> KeyRing:
        return _services(state).keyring

    def decider(state: State) -> Decider:
        return _services(state).decider

    def decisions(state: State) -> DecisionLog:
        return _services(state).decisions

    def served_sets(state: State) -> ServedSets:
        return _services(state).sets

    def decision_log(state: State, request: Request[Any, Any, Any]) -> RequestRecorder:
        return _recorder(_services(state), request)

    providers: dict[str, Any] = {
        "route_set": route_set,
        "call": call,
        "index_admin": index_admin,
        "answerer": answerer,
        "limits": limits,
        "log_queries": log_queries,
        "llm_settings": llm_settings,
        "service_metrics": service_metrics,
        "route_examples": route_examples,
        "evaluator": evaluator,
        "keyring": keyring,
        "decider": decider,
        "decisions": decisions,
        "decision_log": decision_log,
        "review_desk": review_desk,
        "set_chooser": set_chooser,
        "served_sets": served_sets,
    }
    return {name: Provide(fn, sync_to_thread=False) for name, fn in providers.items()}


def _route_call(state: State, request: Request[Any, Any, Any], routing: RoutingStage) -> RouteCall:
    """What a routing endpoint works with, `routing` the stage of the request's set."""
    services = _services(state)
    settings = services.settings
    return RouteCall(routing, settings.limits, settings.log.queries, _recorder(services, request), services.metrics)


def _recorder(services: Services, request: Request[Any, Any, Any]) -> RequestRecorder:
    """The request's decision-log recorder. The guard names the caller: a key id (key-<hash8>)
    with keys; no one without them."""
    identity = request.state.get("caller")
    key = identity if isinstance(identity, str) and identity.startswith("key-") else None
    return RequestRecorder(services.decisions, request_id_var.get(), key)


def _set_dependencies() -> dict[str, Provide]:
    """Under /v1/sets/{set}: the routing stage of the set in the path."""

    def call(state: State, request: Request[Any, Any, Any]) -> RouteCall:
        return _route_call(state, request, choose_set(request, str(request.path_params["set"])).routing)

    return {"call": Provide(call, sync_to_thread=False)}


def create_app(settings: ServiceSettings | None = None, *, services: Services | None = None) -> RequestContext:
    """Build the app (the Litestar app is `.app` of the returned ASGI wrapper). Without
    `services`, start-up builds them (loads the model and the live index) itself.

    The app owns the services: they are stopped (index and store closed) at shutdown.
    """
    config = services.settings if services is not None else (settings or ServiceSettings())
    shared_metrics = services.metrics if services is not None else Metrics()

    async def start(app: Litestar) -> None:
        built = services
        if built is None:
            loop = asyncio.get_running_loop()
            built = await loop.run_in_executor(None, lambda: Services.build(config, metrics=shared_metrics))
        await built.start()
        app.state.services = built

    async def stop(app: Litestar) -> None:
        built: Services | None = app.state.get("services")
        if built is not None:
            await built.stop()

    # The schema declares bearer auth only where the configuration requires it.
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    auth = config.auth
    keyed = bool(auth.api_keys or auth.set_admin_tokens)
    admin_keyed = auth.admin_token is not None or bool(auth.set_admin_tokens)
    public = Router(
        path="/",
        route_handlers=[
            ClassifyController,
            AnswerController,
            ChatController,
            list_routes,
            route_examples,
            eval_files,
            evaluate_queries,
            caller,
            list_sets,
            FeedbackController,
        ],
        guards=[require_api_key_and_json],
        security=bearer if keyed else None,
    )
    # The same classify and answer endpoints for a set named in the path.
    one_set = Router(
        path="/v1/sets/{set:str}",
        route_handlers=[SetClassifyController, SetAnswerController],
        guards=[require_api_key_and_json],
        security=bearer if keyed else None,
        dependencies=_set_dependencies(),
    )
    admin = Router(
        path="/",
        route_handlers=[AdminController, ReviewController],
        guards=[require_admin],
        security=bearer if admin_keyed or keyed else None,
    )
    cors = config.auth.cors_origins
    app = Litestar(
        route_handlers=[
            public,
            one_set,
            admin,
            healthz,
            healthz_head,
            readyz,
            readyz_head,
            metrics,
            ui_router(keyed=keyed, admin_token=admin_keyed),
        ],
        request_class=JSONRequest,
        dependencies=_dependencies(),
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
            # Swagger UI from package files, no CDN (service.api_docs); it is also the page at /schema.
            render_plugins=[SwaggerPage(), JsonRenderPlugin()],
            openapi_router=docs_router("/schema"),
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
