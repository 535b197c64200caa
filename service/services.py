"""The service's object graph, built once per process: what handlers receive by injection.

`Services.build` opens the route set's index store and live version and loads the model (slow,
blocking); everything else is cheap. Handlers take only the typed pieces they use (the routing
stage, the answerer, the index admin, the limits) through Litestar's dependency injection; the
guards read the key ring and rate limiter from the app's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from router_core import Embedder, IndexMissing, IndexStore, embedder_from_settings, open_store
from router_core.manifest import IndexManifest
from router_core.store import describe_store
from router_llm.clients import ClientRegistry
from router_llm.decider import Decider
from service.agents import Answerer
from service.decision_log import DecisionLog
from service.decision_log.build import open_decision_log
from service.evaluation import Evaluator
from service.index_admin import IndexAdmin
from service.live_index import IndexFollower, ModelLoader
from service.metrics import Metrics
from service.review import ReviewDesk
from service.route_examples import RouteExamples
from service.route_set import RouteSet
from service.routing.stage import RoutingStage
from service.security import FailedAuthLimiter, KeyRing, RateLimiter
from service.settings import ServiceSettings

log = logging.getLogger("router.services")


@dataclass
class RouteSetServices:
    """What serving one route set takes: its store, the followed version, the routing stage
    and the index admin."""

    route_set: RouteSet
    store: IndexStore
    follower: IndexFollower
    routing: RoutingStage
    admin: IndexAdmin
    examples: RouteExamples
    evaluator: Evaluator
    reload_interval_s: float
    _reloader: asyncio.Task[None] | None = field(default=None, init=False)

    @classmethod
    def build(
        cls,
        route_set: RouteSet,
        settings: ServiceSettings,
        metrics: Metrics,
        decider: Decider,
        *,
        embedder: Embedder | None = None,
        store: IndexStore | None = None,
    ) -> RouteSetServices:
        """Open the store and the live version and load its model (unless given); raise
        IndexMissing or IndexIncompatible when it cannot serve.

        With `follow_index_model` (the default) the model is the one the live index records, and
        a later version built with another model brings that model along.
        """
        index_store = store or open_store(route_set.index)
        live = index_store.live_version()
        if live is None:  # fail fast, before the slow model load
            raise IndexMissing(
                f"no index found ({describe_store(route_set.index)}): run the re-index command "
                "(python -m indexer) before starting the service"
            )
        emb = route_set.embedding

        def load_recorded(manifest: IndexManifest) -> Embedder:
            return embedder_from_settings(emb, route_set.index, model=manifest.model_source or manifest.model_id)

        loader: ModelLoader | None = load_recorded if route_set.follow_index_model else None
        if embedder is not None:
            model = embedder
        elif loader is not None:
            model = loader(index_store.manifest(live))
        else:
            model = embedder_from_settings(emb, route_set.index)
        follower = IndexFollower(index_store, model, loader)
        follower.load_live()
        routing = RoutingStage(
            follower,
            metrics,
            decider,
            batch_size=emb.batch_size,
            max_micro_batch=settings.limits.max_micro_batch,
            max_pass_chars=settings.limits.max_micro_batch_chars,
            query_chars=settings.limits.max_query_chars,
            llm_cache=settings.decider.cache_size,
        )
        admin = IndexAdmin(route_set, index_store, follower, metrics, timeout_s=settings.limits.reindex_timeout_s)
        evaluator = Evaluator(
            follower,
            settings.evals_dir,
            batch_size=emb.batch_size,
            max_queries=settings.limits.max_eval_queries,
            max_file_bytes=settings.limits.max_eval_file_bytes,
        )
        return cls(
            route_set,
            index_store,
            follower,
            routing,
            admin,
            RouteExamples(index_store, follower),
            evaluator,
            settings.reload_interval_s,
        )

    async def start(self) -> None:
        """Start the routing stage and the task following the live index pointer."""
        await self.routing.start()
        self._reloader = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.reload_interval_s)
            await loop.run_in_executor(None, self.follower.refresh)

    async def stop(self) -> None:
        """Stop background work and release the index and store."""
        if self._reloader is not None:
            self._reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloader
        await self.routing.stop()
        await self.evaluator.stop()
        self.follower.close()
        self.store.close()


@dataclass
class Services:
    """Everything the service's handlers and guards use, built once per process."""

    settings: ServiceSettings
    metrics: Metrics
    keyring: KeyRing
    limiter: RateLimiter
    auth_failures: FailedAuthLimiter
    clients: ClientRegistry
    answerer: Answerer
    decider: Decider
    routes: RouteSetServices
    decisions: DecisionLog
    review: ReviewDesk

    @classmethod
    def build(
        cls,
        settings: ServiceSettings,
        *,
        metrics: Metrics | None = None,
        embedder: Embedder | None = None,
        store: IndexStore | None = None,
    ) -> Services:
        """The whole graph for `settings` (blocking: opens the index, loads the model)."""
        metrics = metrics or Metrics()
        auth = settings.auth
        clients = ClientRegistry(settings.llm, policy=settings.route_files.policy())

        def observe_agent_call(model: str, outcome: str, seconds: float) -> None:
            metrics.agent_seconds.labels(model, outcome).observe(seconds)
            if outcome != "ok":
                metrics.agent_errors.labels(model, outcome).inc()

        decider = Decider(settings.decider, settings.llm, clients)
        route_set = RouteSet.from_settings(settings, follow_index_model=settings.follow_index_model)
        routes = RouteSetServices.build(route_set, settings, metrics, decider, embedder=embedder, store=store)
        decisions = open_decision_log(settings, metrics)
        return cls(
            settings=settings,
            metrics=metrics,
            keyring=KeyRing(auth.api_keys, auth.admin_token),
            limiter=RateLimiter(auth.rate_per_minute, auth.rate_burst),
            auth_failures=FailedAuthLimiter(auth.failed_per_minute, auth.blocked_checks_per_minute),
            clients=clients,
            answerer=Answerer(clients, settings.llm, observe_agent_call),
            decider=decider,
            routes=routes,
            decisions=decisions,
            review=ReviewDesk(
                decisions, routes.follower, route_set, settings.evals_dir, batch_size=settings.embedding.batch_size
            ),
        )

    @property
    def embedder(self) -> Embedder:
        """The model new queries are embedded with (the live index's)."""
        return self.routes.follower.embedder

    async def start(self) -> None:
        """Start background work and create the LLM clients the live route table names."""
        self.clients.prepare(self.routes.follower.current.table)
        await self.routes.start()
        await self.decisions.start()

    async def stop(self) -> None:
        """Stop background work, close the LLM clients, the index, the store and the decision log."""
        await self.routes.stop()
        await self.decisions.stop()
        await self.clients.close()
