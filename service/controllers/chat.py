"""OpenAI-compatible front door: POST /v1/chat/completions and GET /v1/models.

`model` must be the router's name (`_router.yaml: name`, "router" by default), or `router/<set>`
to choose a route set (`service.set_choice`; `GET /v1/models` lists them). The latest user
message is routed (with the history, `service.agents.conversation`) and the chosen route's agent
answers with the whole history as sent, tool calls and tool results included. The response's
`model` is `<router>/<route>/<model>` (`canned` for canned agents) and `x-router-route`,
`x-router-agent`, `x-router-model` say the same in headers; the non-streamed body also carries
a `router` object. Streams follow OpenAI's chunk format and end with `data: [DONE]`; they are
opened (with retries and fallbacks) before the response starts, so a failure to answer at all
is a 502/504 problem, and a failure mid-stream is a final `{"error": ...}` chunk.

`tools`, `tool_choice`, `parallel_tool_calls`, `response_format`, `logprobs` / `top_logprobs`
and `prediction` are forwarded to the agent's endpoint (`service.agents.forwarded`); what cannot
be honoured is a 400 naming the field. An agent that calls tools answers with `tool_calls`
(`finish_reason: "tool_calls"`), streamed as OpenAI streams them: `delta.tool_calls` pieces.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import Stream

from service.agents import Answer, Answerer, AnswerStream
from service.agents.errors import AgentError
from service.agents.forwarded import Forwarded
from service.answer_schemas import (
    SSE_DONE,
    SSE_HEADERS,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessageOut,
    ChoiceOut,
    ChunkChoiceOut,
    DeltaOut,
    ModelList,
    ModelOut,
    RouterInfo,
    router_headers,
    sse_data,
    usage_out,
)
from service.controllers.routed import annotate_decision, chat_of, llm_out, note_skipped, route_request
from service.decision_log import RequestRecorder
from service.errors import ModelNotFound, ServiceError, UnsupportedParameter, problem_body
from service.guards import charge_queries
from service.metrics import Metrics
from service.routing.stage import Routed
from service.schemas import TurnOut, problem_responses
from service.set_choice import SetChooser
from service.settings import LimitSettings

log = logging.getLogger("router.chat")
OWNER = "semantic-router"


def forwarded_of(data: ChatCompletionRequest) -> Forwarded:
    """The output parameters to forward to the agent's endpoint; UnsupportedParameter (400,
    naming the field) for what the router cannot honour whatever the agent."""
    unsupported = sorted(set(data.modalities or ()) - {"text"})
    if unsupported:
        raise UnsupportedParameter(
            f"modalities {unsupported} cannot be honoured: the router's agents answer with text only",
            field="modalities",
        )
    params: dict[str, Any] = {}
    needs_llm: list[str] = []
    _tool_params(data, params, needs_llm)
    fmt = data.response_format
    if fmt is not None:
        kind = fmt.get("type")
        if kind not in ("text", "json_object", "json_schema"):
            raise UnsupportedParameter(
                f"response_format.type is {kind!r}; expected text, json_object or json_schema", field="response_format"
            )
        if kind == "json_schema" and not isinstance(fmt.get("json_schema"), dict):
            raise UnsupportedParameter(
                "response_format of type json_schema needs a json_schema object", field="response_format"
            )
        if kind != "text":  # text is what every agent answers anyway
            params["response_format"] = fmt
            needs_llm.append("response_format")
    if data.top_logprobs is not None and not data.logprobs:
        raise UnsupportedParameter("top_logprobs needs logprobs: true", field="top_logprobs")
    if data.logprobs:
        params["logprobs"] = True
        if data.top_logprobs is not None:
            params["top_logprobs"] = data.top_logprobs
        needs_llm.append("logprobs")
    if data.prediction is not None:  # a hint for speed: any agent honours it by answering
        params["prediction"] = data.prediction
    return Forwarded(params, tuple(needs_llm))


def _tool_params(data: ChatCompletionRequest, params: dict[str, Any], needs_llm: list[str]) -> None:
    """`tools`, `tool_choice` and `parallel_tool_calls`, forwarded as given once each tool has a
    type (and a function tool a name); the legacy `functions` / `function_call` are refused."""
    for legacy in ("functions", "function_call"):
        if getattr(data, legacy) is not None:
            raise UnsupportedParameter(
                f"{legacy} (deprecated by OpenAI) is not forwarded; send tools and tool_choice instead", field=legacy
            )
    if not data.tools:
        for name in ("tool_choice", "parallel_tool_calls"):
            if getattr(data, name) is not None:
                raise UnsupportedParameter(f"{name} needs tools", field=name)
        return
    for i, tool in enumerate(data.tools):
        kind, function = tool.get("type"), tool.get("function")
        if not isinstance(kind, str) or not kind:
            raise UnsupportedParameter(f"tools[{i}].type is missing (e.g. function)", field=f"tools[{i}].type")
        if kind == "function" and not (isinstance(function, dict) and isinstance(function.get("name"), str)):
            raise UnsupportedParameter(
                f"tools[{i}].function.name is missing: a function tool names its function",
                field=f"tools[{i}].function.name",
            )
    params["tools"] = data.tools
    needs_llm.append("tools")
    if data.tool_choice is not None:
        params["tool_choice"] = data.tool_choice
    if data.parallel_tool_calls is not None:
        params["parallel_tool_calls"] = data.parallel_tool_calls


def _created(timestamp: str) -> int:
    try:
        return int(datetime.fromisoformat(timestamp).timestamp())
    except ValueError:
        return 0


def _stream_error(exc: ServiceError | AgentError | None) -> dict[str, object]:
    body = problem_body(exc) if exc is not None else {"status": 500, "detail": "see logs"}
    message = str(body.get("detail", "the answer stream failed"))
    # The problem-details fields ride along; OpenAI's own keys win (body has a `type` URI too).
    return {"error": {**body, "message": message, "type": "router_error", "code": body["status"]}}


async def completion_chunks(
    stream: AnswerStream, model: str, include_usage: bool, *, logprobs: bool = False
) -> AsyncIterator[bytes]:
    """OpenAI chunks of a primed answer stream, ending with `data: [DONE]`; with `logprobs`,
    each piece carries the endpoint's log probabilities."""
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: DeltaOut, finish: str | None = None, probs: dict[str, Any] | None = None) -> bytes:
        return sse_data(ChatCompletionChunk(ident, created, model, [ChunkChoiceOut(0, delta, finish, probs)]))

    try:
        yield chunk(DeltaOut(role="assistant", content=""))
        async for piece in stream.pieces:
            delta = DeltaOut(content=piece.text or None, tool_calls=list(piece.tool_calls) or None)
            yield chunk(delta, probs=stream.tail.piece_logprobs if logprobs else None)
        yield chunk(DeltaOut(), stream.tail.finish_reason)
        if include_usage:
            usage = usage_out(stream.tail.usage)
            yield sse_data(ChatCompletionChunk(ident, created, model, [], usage=usage))
    except (ServiceError, AgentError) as exc:
        yield sse_data(_stream_error(exc))
    except Exception:
        log.exception("chat completion stream for %s failed", model)
        yield sse_data(_stream_error(None))
    finally:
        await stream.aclose()
    yield SSE_DONE


class ChatController(Controller):
    """OpenAI-compatible endpoints."""

    path = "/v1"
    tags = ("openai",)

    @get(
        "/models",
        summary="Models served (the router itself, and router/<set> per route set)",
        responses=problem_responses(401, 429),
    )
    async def models(self, set_chooser: NamedDependency[SetChooser]) -> ModelList:
        """The router's model, named as in `_router.yaml`; with several route sets, also
        `router/<set>` for each set the caller may use (issue 26)."""
        return ModelList(
            [
                ModelOut(name, _created(s.follower.current.manifest.created_at), OWNER)
                for name, s in set_chooser.models()
            ]
        )

    @post(
        "/chat/completions",
        status_code=200,
        summary="OpenAI chat completions, routed",
        responses=problem_responses(400, 401, 404, 413, 429, 502, 503, 504),
    )
    async def chat_completions(
        self,
        data: JSONBody[ChatCompletionRequest],
        set_chooser: NamedDependency[SetChooser],
        answerer: NamedDependency[Answerer],
        limits: NamedDependency[LimitSettings],
        log_queries: NamedDependency[bool],
        decision_log: NamedDependency[RequestRecorder],
        service_metrics: NamedDependency[Metrics],
        request: Request[Any, Any, Any],
    ) -> Response[ChatCompletion] | Stream:
        """Route the conversation (its latest user message, with the history) and answer with
        the chosen route's agent."""
        routing = set_chooser.for_model(data.model).routing  # issue 26: the model names the route set (404/403)
        cap = _token_cap(data, data.model)  # the model was checked by for_model
        forwarded = forwarded_of(data)
        conversation = chat_of(data.messages, limits)
        note_skipped([conversation], service_metrics)
        routed = route_request(conversation)
        charge_queries(request, await routing.cost([routed]))  # the texts the history makes the router embed
        [item] = await routing.route([routed])
        annotate_decision(item, routed, log_query=log_queries, recorder=decision_log)
        table, route = item.index.table, item.decision.route
        if data.stream:
            stream = await answerer.stream(table, route, conversation.messages, max_tokens=cap, forwarded=forwarded)
            include_usage = bool(data.stream_options and data.stream_options.include_usage)
            model = _model_name(item, stream.responder.model)
            return Stream(
                completion_chunks(stream, model, include_usage, logprobs=bool(data.logprobs)),
                media_type="text/event-stream",
                headers={**SSE_HEADERS, **router_headers(stream.responder, item.index.version)},
            )
        answer = await answerer.answer(table, route, conversation.messages, max_tokens=cap, forwarded=forwarded)
        r = answer.responder
        body = ChatCompletion(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=_model_name(item, r.model),
            choices=[ChoiceOut(0, _message(answer), answer.finish_reason, answer.logprobs)],
            usage=usage_out(answer.usage),
            router=RouterInfo(
                route=route,
                agent=r.agent,
                model=r.model,
                fallback=item.decision.fallback,
                score=round(item.decision.score, 4),
                reason=item.decision.reason,
                index_version=item.index.version,
                fallback_reason=r.fallback_reason,
                decided_by=item.decision.decided_by,
                turns=[TurnOut(t.index, t.share) for t in item.decision.turns] or None,
                skipped_parts=dict(conversation.skipped_parts) or None,
                llm=llm_out(item.llm),
                route_set=item.route_set,  # issue 26
            ),
        )
        return Response(body, headers=router_headers(r, item.index.version))


def _token_cap(data: ChatCompletionRequest, router_name: str) -> int | None:
    """The caller's token limit, after refusing what the router does not serve (another model,
    n > 1, tools)."""
    if data.model != router_name:
        raise ModelNotFound(
            f"model {data.model!r} does not exist; this router serves {router_name!r}",
            model=data.model,
            available=[router_name],
        )
    if data.n not in (None, 1):
        raise UnsupportedParameter("n must be 1: the router returns one choice", field="n")
    given = "max_completion_tokens" if data.max_completion_tokens is not None else "max_tokens"
    cap = data.max_completion_tokens if data.max_completion_tokens is not None else data.max_tokens
    if cap is not None and cap < 1:
        raise UnsupportedParameter(f"{given} must be at least 1", field=given)
    return cap


def _message(answer: Answer) -> ChatMessageOut:
    """The assistant's message: its text (null when it only calls tools) and its tool calls."""
    calls = list(answer.tool_calls) or None
    return ChatMessageOut("assistant", None if calls and not answer.text else answer.text, calls)


def _model_name(item: Routed, model: str) -> str:
    return f"{item.index.table.name}/{item.decision.route}/{model}"
