"""The front door: one route set's index version and model, routing the way the service does.

    router = Router(index, embedder)
    router.classify(["How do I use async with Rust?"])        # -> [Decision(route="coding", ...)]
    router.route([RouteRequest(turns)])                        # conversations too

Every decision comes from `router_core.pipeline`, the composition the service serves; this
object only does the I/O the service does with micro-batches and caches: it embeds each
distinct text once, in big batches, and searches them (and the conversations' contexts mixed
from their vectors) once. Modes llm and hybrid: `route`
gives the vote's decisions; `pipeline.question` and `pipeline.settle` take them through a
decision model (the indexer's `eval --llm`, the service's routing stage).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from router_core.decision import Decision
from router_core.embedding import Embedder, Vectors
from router_core.neighbours import Neighbour
from router_core.pipeline import Found, Plan, RouteRequest, decide, found_from, plan, route_with, search_vectors
from router_core.progress import NoSteps, Steps
from router_core.routes import RouteTable
from router_core.store.protocol import OpenIndex

CHUNK = 512  # texts embedded and searched between two progress reports


@dataclass(frozen=True)
class Routing:
    """A batch routed: the decisions, and the plan and neighbours they were made from."""

    requests: tuple[RouteRequest, ...]
    decisions: list[Decision]
    plan: Plan
    found: Found

    def again(self, table: RouteTable) -> list[Decision]:
        """The same requests decided under other parameters, from the same neighbours (the
        search must have fetched at least the new k: see `Router.routing(k=...)`)."""
        return decide(self.requests, plan(self.requests, table), self.found, table)


class Router:
    """Routes queries and conversations against one opened index version with its model."""

    def __init__(self, index: OpenIndex, embedder: Embedder, *, batch_size: int = 64) -> None:
        self.index = index
        self.embedder = embedder
        self.batch_size = batch_size

    @property
    def table(self) -> RouteTable:
        """The route set the version was built from (routes, parameters, mode)."""
        return self.index.table

    def find(
        self, texts: Sequence[str], k: int, *, progress: Steps | None = None, what: str = "texts"
    ) -> tuple[list[list[Neighbour]], Vectors]:
        """Embed `texts` (each once; pass distinct texts) and fetch their k nearest examples,
        `CHUNK` at a time so that `progress` hears how far it got."""
        steps = progress or NoSteps()
        steps.stage(f"embedding and searching {len(texts)} {what}", len(texts))
        hits: list[list[Neighbour]] = []
        parts: list[Vectors] = []
        for start in range(0, len(texts), CHUNK):
            part = list(texts[start : start + CHUNK])
            vectors = self.embedder.encode_queries(part, batch_size=self.batch_size)
            parts.append(vectors)
            hits.extend(self.index.searcher.search(vectors, k))
            steps.advance(len(part))
        if not parts:
            return [], self.embedder.encode_queries([], batch_size=self.batch_size)
        return hits, np.concatenate(parts)

    def search(self, planned: Plan, *, progress: Steps | None = None, k: int = 0) -> Found:
        """What the pipeline reads for a plan: every text's neighbours (at least `k`) and vector,
        and the neighbours of the mixes of those vectors (conversations' contexts)."""
        what = "texts of the conversations" if planned.history else "queries"
        width = max(planned.k, k)
        hits, vectors = self.find(planned.texts, width, progress=progress, what=what)
        by_text = dict(zip(planned.texts, vectors, strict=True))
        rows = search_vectors(planned, by_text, self.embedder.dimension)[len(planned.texts) :]
        for start in range(0, len(rows), CHUNK):  # the mixes: searched, never embedded
            hits.extend(self.index.searcher.search(rows[start : start + CHUNK], width))
        return found_from(planned, by_text, hits, self.index.follow_ups, self.index.replies)

    def routing(
        self,
        requests: Sequence[RouteRequest],
        *,
        table: RouteTable | None = None,
        progress: Steps | None = None,
        k: int = 0,
    ) -> Routing:
        """The vote (and the conversation rule) for every request, as the service decides it
        before any decision model, with what it was decided from; `table` evaluates other
        parameters on the same index; `k` searches more neighbours than the table needs (for
        `Routing.again` with a larger k, threshold curves)."""
        found = Found({})

        def search(planned: Plan) -> Found:
            nonlocal found
            found = self.search(planned, progress=progress, k=k)
            return found

        decisions, planned = route_with(requests, table or self.table, search)
        return Routing(tuple(requests), decisions, planned, found)

    def route(
        self, requests: Sequence[RouteRequest], *, table: RouteTable | None = None, progress: Steps | None = None
    ) -> list[Decision]:
        """The decisions of `routing`."""
        return self.routing(requests, table=table, progress=progress).decisions

    def classify(self, texts: Sequence[str], *, table: RouteTable | None = None) -> list[Decision]:
        """One decision per query text."""
        return self.route([RouteRequest.query(t) for t in texts], table=table)
