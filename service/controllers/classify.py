"""POST /v1/classify and /v1/classify/batch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from router_core.pipeline import RouteRequest
from service.controllers.routed import (
    RouteCall,
    annotate_decision,
    chat_of,
    conversation_of,
    note_skipped,
    record_decisions,
    route_request,
    to_response,
)
from service.errors import BatchTooLarge, InvalidQuery
from service.guards import charge_queries
from service.observability import annotate
from service.query_text import checked_query
from service.schemas import (
    BatchClassifyRequest,
    BatchClassifyResponse,
    ClassifyRequest,
    ClassifyResponse,
    problem_responses,
)


class ClassifyController(Controller):
    """Route queries and conversations to agents."""

    path = "/v1/classify"
    tags = ("classify",)

    @post(
        "/",
        status_code=200,
        summary="Route one query or conversation",
        responses=problem_responses(400, 401, 403, 404, 413, 429, 503),
    )
    async def classify(
        self,
        data: JSONBody[ClassifyRequest],
        call: NamedDependency[RouteCall],
        request: Request[Any, Any, Any],
    ) -> ClassifyResponse:
        """Pick the route for one query, or for the last user message of a conversation
        (`messages`, using its history); `explain` adds the neighbours behind the vote. A
        conversation is charged the texts it makes the router embed."""
        conversation = conversation_of(data.query, data.messages, call.limits)
        note_skipped([conversation], call.metrics)
        routed = route_request(conversation)
        charge_queries(request, await call.routing.cost([routed]))
        [item] = await call.routing.route([routed])
        annotate_decision(item, routed, log_query=call.log_queries, recorder=call.recorder)
        return to_response(item, explain=data.explain, skipped_parts=conversation.skipped_parts)

    @post(
        "/batch",
        status_code=200,
        summary="Route several queries or conversations in one forward pass",
        responses=problem_responses(400, 401, 403, 404, 413, 429, 503),
    )
    async def classify_batch(
        self,
        data: JSONBody[BatchClassifyRequest],
        call: NamedDependency[RouteCall],
        request: Request[Any, Any, Any],
    ) -> BatchClassifyResponse:
        """Pick a route for each query (or conversation), in order; the rate limit counts each
        query, and each conversation by the texts it makes the router embed."""
        limits = call.limits
        if (data.queries is None) == (data.conversations is None):
            raise InvalidQuery("send exactly one of queries or conversations", field="queries")
        field = "queries" if data.queries is not None else "conversations"
        count = len(data.queries or data.conversations or [])
        if count > limits.max_batch:
            raise BatchTooLarge(f"batch holds {count} {field}; the limit is {limits.max_batch}", limit=limits.max_batch)
        requests: list[RouteRequest] = [
            RouteRequest.query(checked_query(q, limits.max_query_chars, field=f"queries[{i}]"))
            for i, q in enumerate(data.queries or [])
        ]
        skipped: list[Mapping[str, int] | None] = [None] * count
        if data.queries is None:
            chats = [chat_of(c.messages, limits) for c in data.conversations or []]
            requests = [route_request(c) for c in chats]
            skipped = [c.skipped_parts for c in chats]
            note_skipped(chats, call.metrics)
        charge_queries(request, await call.routing.cost(requests))
        items = await call.routing.route(requests)
        record_decisions(call.recorder, items, requests)
        annotate(
            queries=len(items),
            routes=[i.decision.route for i in items],
            index_version=items[0].index.version,
            embed_ms=round(items[0].embed_ms, 2),
            search_ms=round(items[0].search_ms, 2),
        )
        return BatchClassifyResponse(
            [to_response(i, explain=data.explain, skipped_parts=s) for i, s in zip(items, skipped, strict=True)]
        )
