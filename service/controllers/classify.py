"""POST /v1/classify and /v1/classify/batch."""

from __future__ import annotations

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from service.errors import BatchTooLarge
from service.observability import annotate
from service.query_text import checked_query
from service.runtime import Classified, Runtime
from service.schemas import (
    BatchClassifyRequest,
    BatchClassifyResponse,
    ClassifyRequest,
    ClassifyResponse,
    classify_response,
    problem_responses,
)


def annotate_decision(item: Classified, query: str, *, log_query: bool) -> None:
    """Put the decision on the request's access-log line (the query only when enabled)."""
    d = item.decision
    annotate(
        route=d.route,
        fallback=d.fallback,
        score=round(d.score, 4),
        index_version=item.index.version,
        embed_ms=round(item.embed_ms, 2),
        search_ms=round(item.search_ms, 2),
        **({"query": query} if log_query else {}),
    )


def to_response(item: Classified, *, explain: bool) -> ClassifyResponse:
    """Wire form, naming the agent from the same version that decided."""
    agent = item.index.table.agent_for(item.decision.route)
    return classify_response(item.decision, agent.name, item.index.version, explain=explain)


class ClassifyController(Controller):
    """Route queries to agents."""

    path = "/v1/classify"
    tags = ("classify",)

    @post("/", status_code=200, summary="Route one query", responses=problem_responses(400, 401, 413, 429, 503))
    async def classify(self, data: JSONBody[ClassifyRequest], runtime: NamedDependency[Runtime]) -> ClassifyResponse:
        """Pick the route for one query; `explain` adds the neighbours behind the vote."""
        query = checked_query(data.query, runtime.settings.limits.max_query_chars)
        [item] = await runtime.classify([query])
        annotate_decision(item, query, log_query=runtime.settings.log.queries)
        return to_response(item, explain=data.explain)

    @post(
        "/batch",
        status_code=200,
        summary="Route several queries in one forward pass",
        responses=problem_responses(400, 401, 413, 429, 503),
    )
    async def classify_batch(
        self, data: JSONBody[BatchClassifyRequest], runtime: NamedDependency[Runtime]
    ) -> BatchClassifyResponse:
        """Pick a route for each query, in order."""
        limit = runtime.settings.limits.max_batch
        if len(data.queries) > limit:
            raise BatchTooLarge(f"batch holds {len(data.queries)} queries; the limit is {limit}", limit=limit)
        max_chars = runtime.settings.limits.max_query_chars
        queries = [checked_query(q, max_chars, field=f"queries[{i}]") for i, q in enumerate(data.queries)]
        items = await runtime.classify(queries)
        annotate(
            queries=len(items),
            routes=[i.decision.route for i in items],
            index_version=items[0].index.version,
            embed_ms=round(items[0].embed_ms, 2),
            search_ms=round(items[0].search_ms, 2),
        )
        return BatchClassifyResponse([to_response(i, explain=data.explain) for i in items])
