"""POST /v1/answer: route a query (or a chat) and answer it with the route's agent.

With `"stream": true` the answer comes as server-sent events:
`route` (the classification, first), `agent` (who answers), `delta`* (text), then `done`
(model, usage) or `error` (problem details) as the last event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import Stream

from service.agents import Answerer, AnswerStream, Conversation
from service.agents.errors import AgentError
from service.answer_schemas import (
    SSE_HEADERS,
    AnswerRequest,
    AnswerResponse,
    DeltaEvent,
    DoneEvent,
    agent_event,
    answer_fields,
    router_headers,
    sse,
    usage_out,
)
from service.controllers.routed import (
    RouteCall,
    annotate_decision,
    conversation_of,
    note_skipped,
    route_request,
    to_response,
)
from service.errors import ServiceError, problem_body
from service.guards import charge_queries
from service.routing.stage import Routed
from service.schemas import ClassifyResponse, problem_responses

log = logging.getLogger("router.answer")
EVENT_STREAM = "text/event-stream"
INTERNAL_ERROR = {
    "type": "about:blank",
    "title": "Internal error",
    "status": 500,
    "detail": "the answer stream failed unexpectedly; see logs",
}


async def stream_events(
    answerer: NamedDependency[Answerer], item: Routed, decided: ClassifyResponse, conversation: Conversation
) -> AsyncIterator[bytes]:
    """Events of a streamed answer; every failure ends the stream with an `error` event."""
    yield sse("route", decided)
    stream: AnswerStream | None = None
    try:
        stream = await answerer.stream(item.index.table, item.decision.route, conversation.messages)
        yield sse("agent", agent_event(stream.responder))
        async for piece in stream.pieces:
            if piece.text:  # /v1/answer offers the agent no tools: text is all it streams
                yield sse("delta", DeltaEvent(piece.text))
        r, tail = stream.responder, stream.tail
        yield sse("done", DoneEvent(r.agent, r.model, usage_out(tail.usage), tail.finish_reason))
    except (ServiceError, AgentError) as exc:
        yield sse("error", problem_body(exc))
    except Exception:
        log.exception("answer stream for route %s failed", item.decision.route)
        yield sse("error", INTERNAL_ERROR)
    finally:
        if stream is not None:
            await stream.aclose()


class AnswerController(Controller):
    """Route and answer."""

    path = "/v1/answer"
    tags = ("answer",)

    @post(
        "/",
        status_code=200,
        summary="Route a query or a chat and answer it",
        responses=problem_responses(400, 401, 403, 404, 413, 429, 502, 503, 504),
    )
    async def answer(
        self,
        data: JSONBody[AnswerRequest],
        call: NamedDependency[RouteCall],
        answerer: NamedDependency[Answerer],
        request: Request[Any, Any, Any],
    ) -> Response[AnswerResponse] | Stream:
        """Route the query (or the conversation's latest user message, with its history), then
        answer with the chosen route's agent. A conversation is charged the texts it makes the
        router embed."""
        conversation = conversation_of(data.query, data.messages, call.limits)
        note_skipped([conversation], call.metrics)
        routed = route_request(conversation)
        charge_queries(request, await call.routing.cost([routed]))
        [item] = await call.routing.route([routed])
        annotate_decision(item, routed, log_query=call.log_queries, recorder=call.recorder)
        decided = to_response(item, explain=data.explain, skipped_parts=conversation.skipped_parts)
        if data.stream:
            # The agent (and any fallback) is known only once the stream runs: the first event
            # carries the decision, the headers what is already fixed.
            return Stream(
                stream_events(answerer, item, decided, conversation),
                media_type=EVENT_STREAM,
                headers={
                    **SSE_HEADERS,
                    "x-router-route": item.decision.route,
                    "x-router-index-version": item.index.version,
                },
            )
        answer = await answerer.answer(item.index.table, item.decision.route, conversation.messages)
        body = AnswerResponse(**msgspec.structs.asdict(decided), **answer_fields(answer))
        return Response(body, headers=router_headers(answer.responder, item.index.version))
