"""Wire types of /v1/answer and the OpenAI-compatible /v1/chat/completions and /v1/models."""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from service.agents import Answer, Attempt, Responder, Usage
from service.schemas import LLMOut, MessageIn, NeighbourOut, TurnOut


# -- /v1/answer -------------------------------------------------------------------------------
class AnswerRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Either `query` or `messages` (routed on the latest user message, history passed on)."""

    query: str | None = None
    messages: list[MessageIn] | None = None
    stream: bool = False
    explain: bool = False


class UsageOut(msgspec.Struct):
    """Tokens used (all zero for canned agents)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AttemptOut(msgspec.Struct, omit_defaults=True):
    """A failed try of one model, or an agent skipped as unavailable."""

    agent: str
    model: str
    kind: str
    error: str
    status: int | None = None


class AnswerResponse(msgspec.Struct, omit_defaults=True):
    """The classification (as /v1/classify) plus who answered and the answer."""

    route: str
    fallback: bool
    score: float
    votes: dict[str, int]
    agent: str
    reason: str
    index_version: str
    answer: str
    model: str
    answered_by: str
    usage: UsageOut | None
    fallback_reason: str | None
    finish_reason: str
    decided_by: str
    route_set: str
    turns: list[TurnOut] | None = None
    skipped_parts: dict[str, int] | None = None
    llm: LLMOut | None = None
    attempts: list[AttemptOut] = msgspec.field(default_factory=list)
    neighbours: list[NeighbourOut] | None = None


class AgentEvent(msgspec.Struct):
    """SSE `agent` event: who answers, sent with the first piece of text."""

    answered_by: str
    kind: str
    model: str
    fallback_reason: str | None
    attempts: list[AttemptOut]


class DeltaEvent(msgspec.Struct):
    """SSE `delta` event: the next piece of the answer."""

    content: str


class DoneEvent(msgspec.Struct):
    """SSE `done` event: the answer is complete."""

    answered_by: str
    model: str
    usage: UsageOut | None
    finish_reason: str


# -- OpenAI chat completions ------------------------------------------------------------------
class StreamOptions(msgspec.Struct):
    """OpenAI `stream_options`."""

    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct):
    """OpenAI's chat completion request; sampling parameters (temperature, top_p...) are the
    agent's to choose and ignored.

    The route's agent decides model, temperature and system prompt; `max_tokens` (or
    `max_completion_tokens`) can only lower the agent's own limit. `messages` reach the agent
    as sent (tool calls and tool results included). `tools`, `tool_choice`,
    `parallel_tool_calls`, `response_format` (`json_object`, `json_schema`), `logprobs` /
    `top_logprobs` and `prediction` are forwarded to the agent's endpoint; a route answered by a
    canned agent refuses `tools`, `response_format` and `logprobs` (400 naming the field). The
    legacy `functions` / `function_call` are refused (send `tools`), and `modalities` other than
    `["text"]` are refused (the agents answer with text).
    """

    model: str
    messages: list[MessageIn]
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    function_call: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    modalities: list[str] | None = None
    prediction: dict[str, Any] | None = None


class ChatMessageOut(msgspec.Struct, omit_defaults=True):
    """The assistant's message: text (null when it only calls tools) and the tools it calls."""

    role: str
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None


class ChoiceOut(msgspec.Struct):
    """The one choice of a completion."""

    index: int
    message: ChatMessageOut
    finish_reason: str
    logprobs: dict[str, Any] | None = None


class RouterInfo(msgspec.Struct, omit_defaults=True):
    """Router extension of a completion: the decision and who answered."""

    route: str
    agent: str
    model: str
    fallback: bool
    score: float
    reason: str
    index_version: str
    fallback_reason: str | None
    decided_by: str
    turns: list[TurnOut] | None = None
    skipped_parts: dict[str, int] | None = None
    llm: LLMOut | None = None
    route_set: str | None = None  # the route set that decided (issue 26)


class ChatCompletion(msgspec.Struct):
    """OpenAI `chat.completion`; `model` is `<router>/<route>/<model or "canned">`."""

    id: str
    created: int
    model: str
    choices: list[ChoiceOut]
    usage: UsageOut | None
    router: RouterInfo
    object: Literal["chat.completion"] = "chat.completion"
    system_fingerprint: str | None = None


class DeltaOut(msgspec.Struct, omit_defaults=True):
    """What a chunk adds to the message: text, or pieces of tool calls (index, then id, type,
    function name and pieces of its arguments, as OpenAI streams them)."""

    role: str | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChunkChoiceOut(msgspec.Struct):
    """The one choice of a chunk."""

    index: int
    delta: DeltaOut
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(msgspec.Struct):
    """OpenAI `chat.completion.chunk`; `usage` is set only on the final usage chunk."""

    id: str
    created: int
    model: str
    choices: list[ChunkChoiceOut]
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    usage: UsageOut | None = None


class ModelOut(msgspec.Struct):
    """One model the router serves."""

    id: str
    created: int
    owned_by: str
    object: Literal["model"] = "model"


class ModelList(msgspec.Struct):
    """OpenAI `GET /v1/models`."""

    data: list[ModelOut]
    object: Literal["list"] = "list"


# -- conversions ------------------------------------------------------------------------------
def usage_out(usage: Usage | None) -> UsageOut | None:
    """Wire form of token usage."""
    if usage is None:
        return None
    return UsageOut(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)


def attempts_out(attempts: tuple[Attempt, ...]) -> list[AttemptOut]:
    """Wire form of failed attempts."""
    return [AttemptOut(a.agent, a.model, a.kind, a.error, a.status) for a in attempts]


def agent_event(responder: Responder) -> AgentEvent:
    """The `agent` event for `responder`."""
    return AgentEvent(
        responder.agent,
        responder.kind,
        responder.model,
        responder.fallback_reason,
        attempts_out(responder.attempts),
    )


def answer_fields(answer: Answer) -> dict[str, Any]:
    """The answer part of an AnswerResponse."""
    r = answer.responder
    return {
        "answer": answer.text,
        "model": r.model,
        "answered_by": r.agent,
        "usage": usage_out(answer.usage),
        "fallback_reason": r.fallback_reason,
        "finish_reason": answer.finish_reason,
        "attempts": attempts_out(r.attempts),
    }


# -- headers and server-sent events -----------------------------------------------------------
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_UNSAFE_HEADER = re.compile(r"[^\x20-\x7e]")
_MAX_HEADER = 300


def _header_value(text: str) -> str:
    clean = _UNSAFE_HEADER.sub("?", text)
    return clean if len(clean) <= _MAX_HEADER else clean[: _MAX_HEADER - 3] + "..."


def router_headers(responder: Responder, index_version: str) -> dict[str, str]:
    """`x-router-*` headers: route, answering agent and model, index version, fallback reason."""
    headers = {
        "x-router-route": responder.route,
        "x-router-agent": responder.agent,
        "x-router-model": responder.model,
        "x-router-index-version": index_version,
    }
    if responder.fallback_reason:
        headers["x-router-fallback-reason"] = _header_value(responder.fallback_reason)
    return {k: _header_value(v) for k, v in headers.items()}


def sse(event: str, data: Any) -> bytes:
    """One named server-sent event with a JSON payload."""
    return b"event: " + event.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"


def sse_data(data: Any) -> bytes:
    """One unnamed server-sent event (OpenAI's stream format)."""
    return b"data: " + msgspec.json.encode(data) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
