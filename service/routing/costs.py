"""What a routing request costs: one model for the micro-batch planner and the rate limit.

The work of a request is embedding the texts the router reads for it that this process has not
embedded yet (then a search and a vote, which are cheap beside it). A single query is one text:
one query in the rate limit (as before) and one unit of its length in characters for the
planner. A conversation is every text the routing pipeline plans for it (`pipeline.plan`: the window's
user and assistant messages, 15 texts for 20 messages; the contexts are mixed from their vectors,
never embedded) that is new to the vector cache:

- planner: each new text is a unit of its own (its characters), embedded ahead of the
  conversation, whose own unit then only searches and votes; a 20-message conversation is split
  across passes like the ~15 texts it costs instead of riding through one pass as one item;
- rate limit: one query per new text, a text longer than `query_chars` counting once per
  `query_chars` started, and at least one per conversation (a live chat's next turn, whose
  history is cached, costs about three).

In mode llm the pipeline plans nothing to embed: every request costs one.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from router_core import RouteRequest, Turn, pipeline
from service.live_index import IndexFollower, Served
from service.routing.batching import Unit
from service.routing.caches import VectorCache

INLINE_CHARS = 20_000
"""Requests holding more characters than this are costed on a worker thread, off the event loop."""


class Routable(Protocol):
    """A request to route: its messages."""

    @property
    def turns(self) -> tuple[Turn, ...]: ...


Q = TypeVar("Q", bound=Routable)


@dataclass(frozen=True)
class Ahead:
    """A text of a conversation, embedded in a pass ahead of (or with) the conversation's own
    unit: the pass embeds it and keeps its vector, nothing more."""

    text: str


class CostModel(Generic[Q]):
    """Prices requests against the served version's route table and the vector cache."""

    def __init__(self, follower: IndexFollower, vectors: VectorCache, *, query_chars: int) -> None:
        self._follower = follower
        self._vectors = vectors
        self._query_chars = max(1, query_chars)

    def units(self, request: Q) -> list[Unit[Q | Ahead]]:
        """The planner's units for `request`: its new texts (results dropped), then itself."""
        if len(request.turns) <= 1:
            return [Unit(request, sum(len(t.text) for t in request.turns))]
        new = self._new_texts(request, self._follower.served, set())
        units: list[Unit[Q | Ahead]] = [Unit(Ahead(text), len(text), keep=False) for text in new]
        return [*units, Unit(request, len(request.turns))]

    def queries(self, requests: Sequence[Q]) -> int:
        """Queries the rate limit charges for `requests` (a text shared by several counts once)."""
        served = self._follower.served
        seen: set[str] = set()
        total = 0
        for request in requests:
            if len(request.turns) <= 1:
                total += 1
                continue
            new = self._new_texts(request, served, seen)
            total += max(1, sum(math.ceil(len(text) / self._query_chars) for text in new))
        return total

    async def queries_off_loop(self, requests: Sequence[Q]) -> int:
        """`queries`, on a worker thread when the requests are large."""
        if sum(len(t.text) for r in requests for t in r.turns) > INLINE_CHARS:
            return await asyncio.to_thread(self.queries, requests)
        return self.queries(requests)

    def _new_texts(self, request: Q, served: Served, seen: set[str]) -> list[str]:
        """The texts the rule reads for `request` that are neither cached nor in `seen` (added)."""
        planned = pipeline.plan([RouteRequest(request.turns)], served.index.table)  # what routing will embed
        model, dimension = served.embedder.model_id, served.embedder.dimension
        new = []
        for text in planned.texts:
            if text not in seen and not self._vectors.has(model, dimension, text):
                seen.add(text)
                new.append(text)
        return new
