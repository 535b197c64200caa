"""The service's long-lived resources, created once per process and injected into handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from router_core import (
    Decision,
    Embedder,
    IndexManifest,
    IndexMissing,
    IndexStore,
    OpenIndex,
    classify_vectors,
    load_embedder,
    open_store,
)
from router_core.store.factory import describe_store
from service.agents import Answerer, ClientRegistry
from service.batching import MicroBatcher
from service.live_index import IndexFollower
from service.metrics import Metrics
from service.security import KeyRing, RateLimiter
from service.settings import ServiceSettings

log = logging.getLogger("router.runtime")


@dataclass(frozen=True)
class Classified:
    """One query's decision and the version that produced it."""

    decision: Decision
    index: OpenIndex
    embed_ms: float
    search_ms: float


@dataclass
class Runtime:
    """Model, index store, followed index version and the micro-batcher."""

    settings: ServiceSettings
    store: IndexStore
    follower: IndexFollower
    batcher: MicroBatcher[Classified] = field(init=False)
    clients: ClientRegistry = field(init=False)
    answerer: Answerer = field(init=False)
    metrics: Metrics = field(init=False)
    keyring: KeyRing = field(init=False)
    limiter: RateLimiter = field(init=False)
    reindex_lock: asyncio.Lock = field(init=False)
    _reloader: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        auth = self.settings.auth
        self.metrics = Metrics()
        self.keyring = KeyRing(auth.api_keys, auth.admin_token)
        self.limiter = RateLimiter(auth.rate_per_minute, auth.rate_burst)
        self.reindex_lock = asyncio.Lock()
        self.batcher = MicroBatcher(self._classify_batch, self.settings.limits.max_micro_batch)
        self.clients = ClientRegistry(self.settings.llm)
        self.answerer = Answerer(self.clients, self.settings.llm, self._observe_agent_call)

    @classmethod
    def build(
        cls, settings: ServiceSettings, *, embedder: Embedder | None = None, store: IndexStore | None = None
    ) -> Runtime:
        """Open the store and the live index, load its model (unless given); raise if unusable.

        With `follow_index_model` (the default) the model is the one the live index records,
        and a later version built with another model brings that model along.
        """
        index_store = store or open_store(settings)
        live = index_store.live_version()
        if live is None:  # fail fast, before the slow model load
            raise IndexMissing(
                f"no index found ({describe_store(settings)}): run the re-index command "
                "(python -m indexer) before starting the service"
            )

        def load_recorded(manifest: IndexManifest) -> Embedder:
            return load_embedder(
                manifest.model_source or manifest.model_id,
                backend=settings.embedding.backend,
                device=settings.embedding.device,
            )

        follow = settings.follow_index_model
        if embedder is not None:
            model = embedder
        elif follow:
            model = load_recorded(index_store.manifest(live))
        else:
            model = load_embedder(
                settings.embedding.model, backend=settings.embedding.backend, device=settings.embedding.device
            )
        follower = IndexFollower(index_store, model, load_recorded if follow else None)
        follower.load_live()
        return cls(settings, index_store, follower)

    @property
    def embedder(self) -> Embedder:
        """The model new queries are embedded with (the live index's)."""
        return self.follower.embedder

    def _classify_batch(self, texts: list[str]) -> list[Classified]:
        with self.follower.lease() as served:
            index = served.index
            t0 = time.perf_counter()
            vectors = served.embedder.encode(texts, batch_size=self.settings.embedding.batch_size)
            t1 = time.perf_counter()
            decisions = classify_vectors(index, vectors)
            t2 = time.perf_counter()
        self.metrics.observe_stages(t1 - t0, t2 - t1)
        self.metrics.observe_decisions(decisions)
        embed_ms, search_ms = (t1 - t0) * 1e3, (t2 - t1) * 1e3
        return [Classified(d, index, embed_ms, search_ms) for d in decisions]

    def _observe_agent_call(self, model: str, outcome: str, seconds: float) -> None:
        self.metrics.agent_seconds.labels(model, outcome).observe(seconds)
        if outcome != "ok":
            self.metrics.agent_errors.labels(model, outcome).inc()

    async def classify(self, texts: list[str]) -> list[Classified]:
        """Classify texts off the event loop, batched with concurrent callers."""
        return await self.batcher.submit(texts)

    async def start(self) -> None:
        """Start the batcher, the LLM clients and the task following the live index pointer."""
        self.batcher.start()
        self.clients.prepare(self.follower.current.table)
        self._reloader = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.reload_interval_s)
            await loop.run_in_executor(None, self.follower.refresh)

    async def stop(self) -> None:
        """Stop background work and release the index and store."""
        if self._reloader is not None:
            self._reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloader
        await self.batcher.stop()
        await self.clients.close()
        self.follower.close()
        self.store.close()
