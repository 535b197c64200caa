"""POST /v1/classify and /v1/classify/batch."""

from __future__ import annotations

from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar import Controller, post

from service.errors import BatchTooLarge, InvalidQuery
from service.runtime import Classified, Runtime
from service.schemas import (
    BatchClassifyRequest,
    BatchClassifyResponse,
    ClassifyRequest,
    ClassifyResponse,
    classify_response,
)


def checked_query(text: str, max_chars: int, *, field: str = "query") -> str:
    """The query stripped, or InvalidQuery naming what is wrong with it."""
    stripped = text.strip()
    if not stripped:
        raise InvalidQuery(f"{field} is empty or only whitespace", field=field)
    if len(stripped) > max_chars:
        raise InvalidQuery(
            f"{field} is {len(stripped)} characters; the limit is {max_chars}",
            field=field,
            limit=max_chars,
        )
    return stripped


def to_response(item: Classified, *, explain: bool) -> ClassifyResponse:
    """Wire form, naming the agent from the same version that decided."""
    agent = item.index.table.agent_for(item.decision.route)
    return classify_response(item.decision, agent.name, item.index.version, explain=explain)


class ClassifyController(Controller):
    """Route queries to agents."""

    path = "/v1/classify"
    tags = ["classify"]

    @post("/", status_code=200, summary="Route one query")
    async def classify(self, data: JSONBody[ClassifyRequest], runtime: NamedDependency[Runtime]) -> ClassifyResponse:
        """Pick the route for one query; `explain` adds the neighbours behind the vote."""
        query = checked_query(data.query, runtime.settings.limits.max_query_chars)
        [item] = await runtime.classify([query])
        return to_response(item, explain=data.explain)

    @post("/batch", status_code=200, summary="Route several queries in one forward pass")
    async def classify_batch(
        self, data: JSONBody[BatchClassifyRequest], runtime: NamedDependency[Runtime]
    ) -> BatchClassifyResponse:
        """Pick a route for each query, in order."""
        limit = runtime.settings.limits.max_batch
        if len(data.queries) > limit:
            raise BatchTooLarge(
                f"batch holds {len(data.queries)} queries; the limit is {limit}", limit=limit
            )
        max_chars = runtime.settings.limits.max_query_chars
        queries = [
            checked_query(q, max_chars, field=f"queries[{i}]") for i, q in enumerate(data.queries)
        ]
        items = await runtime.classify(queries)
        return BatchClassifyResponse([to_response(i, explain=data.explain) for i in items])
