"""The routing stage: the one path every classify, answer and chat request is routed through.

1. The vote, on the micro-batch worker thread (never the event loop): embed the texts the
   request needs that this process has not embedded yet (a chat's history is cached by text),
   search their nearest examples in the served index version, then decide: the single-message
   vote (`router_core.decision`), or the conversation rule over the history
   (`router_core.conversation`).
2. The LLM step, awaited on the event loop, by the route set's mode (`router_core.llm_routing`):
   mode llm asks the decision model for every request; hybrid only for decisions in the
   uncertain band; embedding never. Answers are cached per index version and question.

Every result names the index version it was computed from.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from router_core import Decision, OpenIndex
from router_core.conversation import Turn, last_user_text, route_conversations, texts_needed
from router_core.decision import decide_many
from router_core.embedding import Vectors
from router_core.llm_routing import decision_after, llm_only, question_for
from router_core.neighbours import Neighbour
from router_llm.decider import Asked, Decider
from router_llm.decider import Outcome as LLMOutcome
from service.live_index import IndexFollower
from service.metrics import Metrics
from service.routing.batching import MicroBatcher
from service.routing.caches import LRU, VectorCache
from service.routing.costs import CostModel

log = logging.getLogger("router.routing")
_MAX_REROUTES = 5


@dataclass(frozen=True)
class RouteRequest:
    """What to route: a conversation's messages (a single query is one user message)."""

    turns: tuple[Turn, ...]

    @classmethod
    def query(cls, text: str) -> RouteRequest:
        """One user message."""
        return cls((Turn(0, "user", text),))

    @property
    def text(self) -> str:
        """The message being routed (the last user message)."""
        return last_user_text(self.turns)


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


class RoutingStage:
    """Routes requests against the followed index version."""

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
    ) -> None:
        self._follower = follower
        self._metrics = metrics
        self._decider = decider
        self._batch_size = batch_size
        self._vectors = VectorCache(vector_cache)
        # The nearest examples of chat history texts, per index version: a live chat sends its
        # history on every turn, and searching 20 texts again cost more than embedding the new one.
        self._neighbours: LRU[Sequence[Neighbour]] = LRU(max(1, vector_cache // 4))
        self._answers: LRU[Asked] = LRU(llm_cache)
        # Fairness: a forward pass holds at most max_pass_chars of text, and big batches are
        # split across passes so that single requests are not held up (service.routing.batching).
        # Issue 22: a request is priced by the new texts it makes the vote embed (a conversation's
        # window and context texts, each a unit of its own ahead of it), the same model the rate
        # limit charges with (`cost`; service.routing.costs). A caller whose client has gone is
        # cancelled in `submit`, and the batcher drops its units from the next pass.
        self._costs = CostModel(follower, self._vectors, RouteRequest.query, query_chars=query_chars)
        self._batcher: MicroBatcher[RouteRequest, Routed] = MicroBatcher(
            self._vote, max_micro_batch, units=self._costs.units, max_cost=max_pass_chars
        )

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

    async def cost(self, requests: Sequence[RouteRequest]) -> int:
        """Queries the rate limit charges for routing `requests` (service.routing.costs)."""
        return await self._costs.queries_off_loop(requests)

    async def route(self, requests: Sequence[RouteRequest]) -> list[Routed]:
        """Route every request, in order; the vote's requests share forward passes with
        concurrent callers, then the LLM step runs for those the mode sends to it."""
        voted = await self._batcher.submit(requests)
        for _ in range(_MAX_REROUTES):
            # A batch split across passes may straddle a switch of the live version: route it
            # again (its texts' vectors are cached) so the response comes from one version.
            if len({r.index.version for r in voted}) <= 1:
                break
            voted = await self._batcher.submit(requests)
        mode = voted[0].index.table.mode if voted else "embedding"
        if mode != "embedding":
            voted = list(
                await asyncio.gather(*(self._llm_step(r, req) for r, req in zip(voted, requests, strict=True)))
            )
        self._metrics.observe_decisions([r.decision for r in voted])
        return voted

    # -- the vote, on the worker thread ---------------------------------------------------------
    def _vote(self, requests: list[RouteRequest]) -> list[Routed]:
        with self._follower.lease() as served:
            index, embedder = served.index, served.embedder
            table = index.table
            if table.mode == "llm":  # the model decides; nothing to embed
                return [Routed(llm_only(None, table.params.default_route), index, 0.0, 0.0) for _ in requests]
            plans = [texts_needed(r.turns, table.conversation) for r in requests]
            texts = list(dict.fromkeys(t for plan in plans for t in plan))
            t0 = time.perf_counter()
            vectors, embedded = self._vectors.vectors(
                embedder, texts, lambda batch: embedder.encode(batch, batch_size=self._batch_size)
            )
            t1 = time.perf_counter()
            chat_texts = {t for plan, r in zip(plans, requests, strict=True) if len(r.turns) > 1 for t in plan}
            by_text = self._search(index, texts, vectors, table.params.k, remember=chat_texts)
            t2 = time.perf_counter()
        vector_of = dict(zip(texts, vectors, strict=True))
        own = decide_many([by_text[plan[0]] for plan in plans], table.params)
        decisions = list(own)
        chats = [i for i, r in enumerate(requests) if len(r.turns) > 1]
        if chats:
            routed = route_conversations(
                [requests[i].turns for i in chats],
                by_text,
                vector_of,
                [own[i] for i in chats],
                table.params,
                table.conversation,
            )
            for i, d in zip(chats, routed, strict=True):
                decisions[i] = d
        self._metrics.observe_stages(t1 - t0, t2 - t1)
        self._metrics.observe_embedded(len(texts), embedded)
        embed_ms, search_ms = (t1 - t0) * 1e3, (t2 - t1) * 1e3
        return [Routed(d, index, embed_ms, search_ms, embedded) for d in decisions]

    def _search(
        self, index: OpenIndex, texts: list[str], vectors: Vectors, k: int, *, remember: set[str]
    ) -> dict[str, Sequence[Neighbour]]:
        """Each text's k nearest examples: from the cache for texts searched before in this
        version, the rest in one search; the texts of chats (`remember`) are kept for their next turn."""
        rows, missing = self._neighbours.through(
            [(index.version, k, text) for text in texts],
            lambda positions: index.searcher.search(vectors[positions], k),
            keep=lambda i: texts[i] in remember,
        )
        self._metrics.observe_searched(len(texts), len(missing))
        return dict(zip(texts, rows, strict=True))

    # -- the LLM step, on the event loop --------------------------------------------------------
    async def _llm_step(self, voted: Routed, request: RouteRequest) -> Routed:
        table = voted.index.table
        conversation = [(t.role, t.text) for t in request.turns if t.role in ("user", "assistant")]
        question = question_for(table, voted.decision, conversation)
        if question is None:
            return voted
        key = (voted.index.version, *question.key)
        asked = self._answers.get(key)
        cached = asked is not None
        if asked is None:
            asked = await self._decider.ask(question.messages, question.allowed)
            if asked.choice is not None:  # failures are not remembered: the next call may succeed
                self._answers.put(key, asked)
        self._metrics.observe_llm(table.mode, asked, cached=cached, vote=voted.decision)
        verdict = LLMVerdict(asked.model, asked.outcome, round(asked.seconds * 1e3, 2), cached, asked.detail)
        return replace(voted, decision=decision_after(table, voted.decision, asked.choice), llm=verdict)
