"""The service's object graph, built once per process: what handlers receive by injection.

`Services.build` reads the route sets (`router_core.route_sets`), opens each set's index store
and live version and loads the models (slow, blocking; one model however many sets use it,
`service.models`); everything else is cheap. Handlers take only the typed pieces they use (the
set's routing stage, the answerer, the index admin, the limits) through Litestar's dependency
injection (`service.set_choice` picks the set of each request); the guards read the key ring
and rate limiters from the app's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from router_core import (
    Embedder,
    IndexMissing,
    IndexStore,
    RouteSetsInvalid,
    live_to_replace,
    open_store,
    route_sets_of,
)
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
from service.models import ModelRegistry
from service.rate_limits import FailedAuthLimiter, RateLimiter
from service.review import ReviewDesk
from service.route_examples import RouteExamples
from service.route_set import RouteSet
from service.routing.caches import VectorCache
from service.routing.shared_vectors import SHARED_DIR_ENV, open_shared_dir
from service.routing.stage import RoutingStage
from service.security import KeyRing
from service.served_sets import ServedSets
from service.settings import ServiceSettings

log = logging.getLogger("router.services")
VECTOR_CACHE = 20_000  # texts' vectors kept, all sets together (keyed by model and text)


@dataclass(frozen=True)
class Shared:
    """What every route set's services share: the metrics, the decision model and log, the
    loaded models, the vector cache and the one worker thread running forward passes."""

    settings: ServiceSettings
    metrics: Metrics
    decider: Decider
    decisions: DecisionLog
    models: ModelRegistry
    vectors: VectorCache
    passes: ThreadPoolExecutor


@dataclass
class RouteSetServices:
    """What serving one route set takes: its store, the followed version, the routing stage,
    the index admin, its examples view, evaluator and review desk."""

    route_set: RouteSet
    store: IndexStore
    follower: IndexFollower
    routing: RoutingStage
    admin: IndexAdmin
    examples: RouteExamples
    evaluator: Evaluator
    review: ReviewDesk
    reload_interval_s: float
    _reloader: asyncio.Task[None] | None = field(default=None, init=False)

    @property
    def name(self) -> str:
        """The set's name."""
        return self.route_set.name

    @classmethod
    def build(
        cls,
        route_set: RouteSet,
        shared: Shared,
        *,
        embedder: Embedder | None = None,
        store: IndexStore | None = None,
    ) -> RouteSetServices:
        """Open the store and the live version and get its model (unless given) from the
        registry; raise IndexMissing or IndexIncompatible when it cannot serve.

        With `follow_index_model` (the default) the model is the one the live index records, and
        a later version built with another model brings that model along.
        """
        index_store = store or open_store(route_set.index)
        try:
            return cls._build(route_set, shared, index_store, embedder)
        except BaseException:
            if store is None:
                index_store.close()
            raise

    @classmethod
    def _build(
        cls, route_set: RouteSet, shared: Shared, index_store: IndexStore, embedder: Embedder | None
    ) -> RouteSetServices:
        settings, emb = shared.settings, route_set.embedding
        live = index_store.live_version()
        if live is None:  # fail fast, before the slow model load
            raise IndexMissing(
                f"no index found ({describe_store(route_set.index)}): run the re-index command "
                f"({_reindex_command(route_set.name)}) before starting the service"
            )

        def load_recorded(manifest: IndexManifest) -> Embedder:
            return shared.models.get(emb, route_set.index, manifest.model_source or manifest.model_id)

        loader: ModelLoader | None = load_recorded if route_set.follow_index_model else None
        if embedder is not None:
            model = embedder
        elif loader is not None:
            model = loader(index_store.manifest(live))
        else:
            model = shared.models.get(emb, route_set.index)
        follower = IndexFollower(index_store, model, loader)
        follower.load_live()
        metrics = shared.metrics.for_set(route_set.name)
        routing = RoutingStage(
            follower,
            metrics,
            shared.decider,
            batch_size=emb.batch_size,
            max_micro_batch=settings.limits.max_micro_batch,
            max_pass_chars=settings.limits.max_micro_batch_chars,
            query_chars=settings.limits.max_query_chars,
            llm_cache=settings.decider.cache_size,
            route_set=route_set.name,
            vectors=shared.vectors,
            executor=shared.passes,
        )
        admin = IndexAdmin(route_set, index_store, follower, metrics, timeout_s=settings.limits.reindex_timeout_s)
        evaluator = Evaluator(
            follower,
            settings.evals_dir,
            batch_size=emb.batch_size,
            max_queries=settings.limits.max_eval_queries,
            max_file_bytes=settings.limits.max_eval_file_bytes,
        )
        review = ReviewDesk(shared.decisions, follower, route_set, settings.evals_dir, batch_size=emb.batch_size)
        return cls(
            route_set,
            index_store,
            follower,
            routing,
            admin,
            RouteExamples(index_store, follower),
            evaluator,
            review,
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


def _reindex_command(name: str) -> str:
    return "python -m indexer" if name == "default" else f"python -m indexer reindex --set {name}"


@dataclass
class Services:
    """Everything the service's handlers and guards use, built once per process."""

    settings: ServiceSettings
    metrics: Metrics
    keyring: KeyRing
    limiter: RateLimiter
    set_limiter: RateLimiter
    auth_failures: FailedAuthLimiter
    clients: ClientRegistry
    answerer: Answerer
    decider: Decider
    sets: ServedSets
    decisions: DecisionLog
    models: ModelRegistry
    passes: ThreadPoolExecutor

    @classmethod
    def build(
        cls,
        settings: ServiceSettings,
        *,
        metrics: Metrics | None = None,
        embedder: Embedder | None = None,
        store: IndexStore | None = None,
        models: ModelRegistry | None = None,
        processes: int = 1,
    ) -> Services:
        """The whole graph for `settings` (blocking: opens the indexes, loads the models).
        `embedder` serves every set (tests); `store` is the index of the default set. A set
        that cannot serve is reported (`/readyz`) while the others serve; none serving is the
        first set's error. `processes`: the worker processes serving together (each counts
        failed authentications apart, so each gets its share of those budgets: guessing stays
        as slow as with one process)."""
        metrics = metrics or Metrics()
        auth = settings.auth
        found = route_sets_of(settings)
        unknown = [(where, name) for where, name in auth.named_sets() if name not in found.names]
        if unknown:
            named = ", ".join(f"{where} names route set {name!r}" for where, name in unknown)
            raise RouteSetsInvalid(f"{named}, which is not a route set; the route sets are {', '.join(found.names)}")
        clients = ClientRegistry(settings.llm, policy=settings.route_files.policy())

        def observe_agent_call(model: str, outcome: str, seconds: float) -> None:
            metrics.agent_seconds.labels(model, outcome).observe(seconds)
            if outcome != "ok":
                metrics.agent_errors.labels(model, outcome).inc()

        decider = Decider(settings.decider, settings.llm, clients)
        models = models if models is not None else ModelRegistry()  # (an empty registry is falsy)
        decisions = open_decision_log(settings, metrics)
        passes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        # several worker processes: the vectors any of them embedded, for all (service.routing.shared_vectors)
        workers_vectors = open_shared_dir(os.environ.get(SHARED_DIR_ENV), VECTOR_CACHE)
        vectors = VectorCache(VECTOR_CACHE, workers_vectors)
        shared = Shared(settings, metrics, decider, decisions, models, vectors, passes)

        def build_set(route_set: RouteSet) -> RouteSetServices:
            own_store = store if route_set.name == found.default else None
            return RouteSetServices.build(route_set, shared, embedder=embedder, store=own_store)

        def model_for(route_set: RouteSet, index_store: IndexStore) -> Embedder:
            """What a set that cannot serve re-indexes with: the model its index records (when
            it follows it), else the configured one."""
            if embedder is not None:
                return embedder
            live = live_to_replace(index_store)
            if live is not None and route_set.follow_index_model:
                recorded = index_store.manifest(live)
                return models.get(route_set.embedding, route_set.index, recorded.model_source or recorded.model_id)
            return models.get(route_set.embedding, route_set.index)

        try:
            sets = ServedSets.build(found, settings, build_set, model_for)
        except BaseException:
            passes.shutdown(wait=False)
            if decisions.store is not None:
                decisions.store.close()
            raise
        return cls(
            settings=settings,
            metrics=metrics,
            keyring=KeyRing(auth.api_keys, auth.admin_token, auth.set_admin_tokens),
            limiter=RateLimiter(auth.rate_per_minute, auth.rate_burst),
            set_limiter=RateLimiter(auth.set_rate_per_minute, auth.set_rate_burst),
            auth_failures=FailedAuthLimiter(
                math.ceil(auth.failed_per_minute / processes), math.ceil(auth.blocked_checks_per_minute / processes)
            ),
            clients=clients,
            answerer=Answerer(clients, settings.llm, observe_agent_call),
            decider=decider,
            sets=sets,
            decisions=decisions,
            models=models,
            passes=passes,
        )

    @property
    def routes(self) -> RouteSetServices:
        """The default set's services (the paths that name no set)."""
        return self.sets.get(self.sets.default)

    @property
    def embedder(self) -> Embedder:
        """The model new queries of the default set are embedded with (the live index's)."""
        return self.routes.follower.embedder

    async def start(self) -> None:
        """Start background work and create the LLM clients the live route tables name."""
        self.sets.on_serving(self._prepare_clients)
        await self.sets.start()
        await self.decisions.start()

    def _prepare_clients(self, route_set: RouteSetServices) -> None:
        self.clients.prepare(route_set.follower.current.table)

    async def stop(self) -> None:
        """Stop background work, close the LLM clients, the indexes, the stores and the decision log."""
        await self.sets.stop()
        self.passes.shutdown(wait=True)
        await self.decisions.stop()
        await self.clients.close()
