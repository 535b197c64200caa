"""The routing stage: the one path every classify, answer and chat request is routed through.

The routing itself is `router_core.pipeline` (what evaluation and the benchmarks run too);
this stage does the I/O around it:

1. The vote, on the micro-batch worker thread (never the event loop): `pipeline.route_with`
   plans the texts, this stage embeds those this process has not embedded yet (a chat's
   history is cached by text), adds the conversations' contexts mixed from their vectors
   (`pipeline.search_vectors`) and searches the nearest examples of all of them in the served
   index version in one batch (a chat's history once per version), and the pipeline decides.
   The caches only save work: without them a request costs one embedding per message of its
   window and one search.
2. The LLM step, awaited on the event loop: `pipeline.question` says what the route set's mode
   asks, the decision model answers (cached per index version and question), and
   `pipeline.settle` applies the answer.

Every result names the index version it was computed from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from router_core import DEFAULT_SET, Decision, Neighbour, OpenIndex, Question, pipeline
from router_core.embedding import Vectors, spare_cores
from router_core.mixing import Mix
from router_core.pipeline import Found, Plan, RouteRequest
from router_core.replies import new_topic_chance
from router_llm.decider import Asked, Decider
from router_llm.decider import Outcome as LLMOutcome
from service.live_index import IndexFollower
from service.metrics import Metrics
from service.routing.batching import MicroBatcher, Unit
from service.routing.caches import LRU, VectorCache
from service.routing.costs import Ahead, CostModel
from service.routing.idle_cores import IdleCores

log = logging.getLogger("router.routing")
_MAX_REROUTES = 5


@dataclass(frozen=True)
class LLMVerdict:
    """What the decision model did for one request."""

    model: str
    outcome: LLMOutcome
    latency_ms: float
    cached: bool = False
    detail: str = ""


@dataclass(frozen=True)
class Routed:
    """One request's decision, the version it came from and how it was made."""

    decision: Decision
    index: OpenIndex
    embed_ms: float
    search_ms: float
    embedded: int = 0  # texts this request's batch had to embed
    llm: LLMVerdict | None = None
    route_set: str = DEFAULT_SET  # issue 26: the route set whose index decided


class RoutingStage:
    """Routes requests against the followed index version of one route set."""

    def __init__(
        self,
        follower: IndexFollower,
        metrics: Metrics,
        decider: Decider,
        *,
        batch_size: int,
        max_micro_batch: int,
        vector_cache: int = 20_000,
        llm_cache: int = 10_000,
        max_pass_chars: int | None = None,
        query_chars: int = 2000,
        route_set: str = DEFAULT_SET,
        vectors: VectorCache | None = None,
        executor: ThreadPoolExecutor | None = None,
        idle: IdleCores | None = None,
    ) -> None:
        # Issue 26, several route sets: `route_set` names this stage's set in its results; the
        # vector cache (keyed by model and text) and the pass worker may be shared by the sets.
        self.route_set = route_set
        self._follower = follower
        self._metrics = metrics
        self._decider = decider
        self._batch_size = batch_size
        self._vectors = vectors if vectors is not None else VectorCache(vector_cache)
        # The nearest examples of chat history texts, per index version: a live chat sends its
        # history on every turn, and searching 20 texts again cost more than embedding the new one.
        self._neighbours: LRU[Sequence[Neighbour]] = LRU(max(1, vector_cache // 4))
        # Each agent message's chance of a new topic after it (router_core.replies), per version:
        # a chat's window holds the same agent messages turn after turn.
        self._chances: LRU[float] = LRU(max(1, vector_cache // 4))
        self._answers: LRU[Asked] = LRU(llm_cache)
        # Fairness: a forward pass holds at most max_pass_chars of text, and big batches are
        # split across passes so that single requests are not held up (service.routing.batching).
        # Issue 22: a request is priced by the new texts it makes the vote embed (a conversation's
        # window messages, each a unit of its own ahead of it), the same model the rate
        # limit charges with (`cost`; service.routing.costs). A caller whose client has gone is
        # cancelled in `submit`, and the batcher drops its units from the next pass.
        self._costs: CostModel[RouteRequest] = CostModel(follower, self._vectors, query_chars=query_chars)
        self._batcher: MicroBatcher[RouteRequest | Ahead, Routed | None] = MicroBatcher(
            self._vote, max_micro_batch, units=self._units, max_cost=max_pass_chars, executor=executor
        )
        # a pass of one caller's work may split a small encode over the cores when one is idle,
        # and compute its replies' chances beside its search (`_beside`)
        self._idle = idle if idle is not None else IdleCores()
        self._side: ThreadPoolExecutor | None = None

    @property
    def current(self) -> OpenIndex:
        """The version new requests are routed with."""
        return self._follower.current

    async def start(self) -> None:
        """Start the micro-batch worker."""
        self._batcher.start()

    async def stop(self) -> None:
        """Stop the worker."""
        await self._batcher.stop()
        self._idle.close()
        if self._side is not None:
            self._side.shutdown(wait=True)
            self._side = None

    async def cost(self, requests: Sequence[RouteRequest]) -> int:
        """Queries the rate limit charges for routing `requests` (service.routing.costs)."""
        return await self._costs.queries_off_loop(requests)

    async def route(self, requests: Sequence[RouteRequest]) -> list[Routed]:
        """Route every request, in order; the vote's requests share forward passes with
        concurrent callers, then the LLM step runs for those the mode sends to it."""
        voted = await self._submit(requests)
        for _ in range(_MAX_REROUTES):
            # A batch split across passes may straddle a switch of the live version: route it
            # again (its texts' vectors are cached) so the response comes from one version.
            if len({r.index.version for r in voted}) <= 1:
                break
            voted = await self._submit(requests)
        asks = [
            (i, q)
            for i, (r, req) in enumerate(zip(voted, requests, strict=True))
            if (q := pipeline.question(req, r.decision, r.index.table)) is not None
        ]
        if asks:
            voted = list(voted)
            settled = await asyncio.gather(*(self._llm_step(voted[i], q) for i, q in asks))
            for (i, _), item in zip(asks, settled, strict=True):
                voted[i] = item
        self._metrics.observe_decisions([r.decision for r in voted])
        return voted

    def _units(self, item: RouteRequest | Ahead) -> list[Unit[RouteRequest | Ahead]]:
        """The batcher's units for a submitted item (always a request: `Ahead` units are made here)."""
        if isinstance(item, Ahead):
            return [Unit(item, len(item.text), keep=False)]
        return self._costs.units(item)

    async def _submit(self, requests: Sequence[RouteRequest]) -> list[Routed]:
        """The vote's results for `requests` (the units embedding their texts ahead drop theirs)."""
        voted = await self._batcher.submit(requests)
        return [r for r in voted if r is not None]

    # -- the vote, on the worker thread ---------------------------------------------------------
    def _vote(self, items: list[RouteRequest | Ahead]) -> list[Routed | None]:
        """Route a pass's requests; texts of conversations embedded ahead of them (`Ahead`) are
        embedded with the pass's own texts and kept in the vector cache, never voted on."""
        requests = [i for i in items if isinstance(i, RouteRequest)]
        ahead = list(dict.fromkeys(i.text for i in items if isinstance(i, Ahead)))
        timings: dict[str, float] = {}
        # one caller's work, nothing else waiting here, and a core idle on the machine
        lone = self._batcher.lone_pass and self._idle.spare()
        with self._follower.lease() as served:
            index, embedder = served.index, served.embedder

            def encode(batch: list[str]) -> Vectors:
                # nothing else waits: a small encode may use the other core
                with spare_cores() if lone else contextlib.nullcontext():
                    return embedder.encode_queries(batch, batch_size=self._batch_size)

            def embed(texts: list[str], conversations: frozenset[str]) -> Vectors:
                t0 = time.perf_counter()
                vectors, embedded = self._vectors.vectors(embedder, texts, encode, shared=conversations)
                timings["embed"], timings["embedded"] = time.perf_counter() - t0, embedded
                self._metrics.observe_embedded(len(texts), embedded)
                return vectors

            def search(planned: Plan) -> Found:
                texts = list(planned.texts)
                planned_texts = set(texts)
                extra = [t for t in ahead if t not in planned_texts]
                vectors = embed(texts + extra, planned.history | frozenset(ahead))[: len(texts)]
                t1 = time.perf_counter()
                # Issue 21: the texts' vectors, then the conversations' contexts mixed from them
                # (pipeline.search_vectors), searched together: one search per pass.
                by_text = dict(zip(texts, vectors, strict=True))
                beside = None  # a lone pass on an idle machine: the replies' product beside the search
                if lone and index.replies is not None and self._new_agents(index, planned.agents):
                    beside = self._beside().submit(self._reply_chance, index, planned.agents, by_text)
                rows = pipeline.search_vectors(planned, by_text, embedder.dimension)
                hits = self._search(index, planned.queries, rows, planned.k, remember=planned.history)
                timings["search"] = time.perf_counter() - t1
                found = pipeline.found_from(planned, by_text, hits, index.follow_ups)
                if beside is not None:
                    return replace(found, reply_chance=beside.result())
                if index.replies is None or not planned.agents:
                    return found
                return replace(found, reply_chance=self._reply_chance(index, planned.agents, by_text))

            decisions, planned = pipeline.route_with(requests, index.table, search)
            if ahead and not planned.texts:  # a pass of texts ahead of a conversation only
                embed(ahead, frozenset(ahead))
        embed_s, search_s = timings.get("embed", 0.0), timings.get("search", 0.0)
        if planned.texts:
            self._metrics.observe_stages(embed_s, search_s)
        embedded = int(timings.get("embedded", 0))
        routed = iter(
            Routed(d, index, embed_s * 1e3, search_s * 1e3, embedded, route_set=self.route_set) for d in decisions
        )
        return [next(routed) if isinstance(i, RouteRequest) else None for i in items]

    def _new_agents(self, index: OpenIndex, texts: Sequence[str]) -> bool:
        """Whether some of `texts` (agent messages) have no chance cached for this version."""
        return any((index.version, text) not in self._chances for text in texts)

    def _beside(self) -> ThreadPoolExecutor:
        """The thread that computes a lone pass's replies' chances while the pass searches
        (started on first use)."""
        if self._side is None:
            self._side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="router-beside")
        return self._side

    def _reply_chance(
        self, index: OpenIndex, texts: Sequence[str], vectors: Mapping[str, npt.NDArray[np.float32]]
    ) -> dict[str, float]:
        """Each agent message's chance of a new topic after it (router_core.replies), from the
        cache for messages seen before in this version, the rest computed at once."""
        values, _ = self._chances.through(
            [(index.version, text) for text in texts],
            lambda positions: [
                float(c) for c in new_topic_chance(np.stack([vectors[texts[i]] for i in positions]), index.replies)
            ],
        )
        return {text: value for text, value in zip(texts, values, strict=True) if math.isfinite(value)}

    def _search(
        self, index: OpenIndex, queries: Sequence[str | Mix], vectors: Vectors, k: int, *, remember: frozenset[str]
    ) -> list[Sequence[Neighbour]]:
        """Each query's k nearest examples, in order: from the cache for queries searched before
        in this version, the rest in one search; the texts of chats (`remember`) and their
        contexts (mixes) are kept for their next turn."""
        rows, missing = self._neighbours.through(
            [(index.version, k, query) for query in queries],
            lambda positions: index.searcher.search(vectors[positions], k),
            keep=lambda i: isinstance(queries[i], Mix) or queries[i] in remember,
        )
        self._metrics.observe_searched(len(queries), len(missing))
        return rows

    # -- the LLM step, on the event loop --------------------------------------------------------
    async def _llm_step(self, voted: Routed, question: Question) -> Routed:
        table = voted.index.table
        key = (voted.index.version, *question.key)
        asked = self._answers.get(key)
        cached = asked is not None
        if asked is None:
            asked = await self._decider.ask(question.messages, question.allowed)
            # Only real answers (a route or none) are remembered: a failure or a garbled answer
            # (llm_unrecognised) must not outlive the endpoint's recovery (issue 22, item 6).
            if asked.real:
                self._answers.put(key, asked)
        agreed = pipeline.agreement(voted.decision, asked.choice, table)
        self._metrics.observe_llm(table.mode, asked, cached=cached, agreed=agreed)
        verdict = LLMVerdict(asked.model, asked.outcome, round(asked.seconds * 1e3, 2), cached, asked.detail)
        return replace(voted, decision=pipeline.settle(voted.decision, asked.choice, table), llm=verdict)
