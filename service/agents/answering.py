"""Answer a routed request with the route's agent.

The agent gets its own system prompt, then the caller's messages exactly as sent (tool calls
and tool results included), and the caller's forwarded parameters (`tools`, `response_format`...,
see `service.agents.forwarded`); its answer is text, tool calls, or both.

Each model of an LLM agent is tried up to `1 + retries` times: timeouts, connection errors,
5xx, 408, 409 and 429 are retried after a backoff; other errors move on at once. After the
agent's primary model come its `fallback_models`, in order, then the router's default agent.
When nothing answers, NoAnswer (502, or 504 when every model reached timed
out) names the route, the models tried and why each failed. An agent with no endpoint
configured is skipped at once, so canned defaults answer offline: then the answer says which
route was chosen and that its agent has no endpoint, instead of the default agent's reply. A
streamed answer fails over only until its first piece (text or a tool call) has arrived; an
endpoint that answers a streamed request with anything but an event stream (a proxy's page)
fails over too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from router_core import CannedAgent, LLMAgent, RouteTable
from router_llm.backoff import Backoff
from router_llm.clients import ClientRegistry, Connection
from router_llm.endpoints import Unavailable
from router_llm.failures import Attempt, EmptyReply, Failure, classify_failure
from router_llm.settings import LLMSettings
from service.agents.conversation import ChatMessage
from service.agents.errors import NoAnswer, ParameterRefused
from service.agents.forwarded import NOTHING, Forwarded, canned_refusal, offline_reply
from service.agents.outcomes import (
    NO_USAGE,
    Answer,
    AnswerStream,
    Piece,
    Responder,
    StreamTail,
    Usage,
)
from service.agents.streaming import Primed, absorb, nothing, once, prime, usage_of

log = logging.getLogger("router.agents")
T = TypeVar("T")
Call = Callable[[Connection, LLMAgent, str, float], Awaitable[T]]
CallObserver = Callable[[str, str, float], None]
"""Told of every model call: (model, outcome "ok" | "timeout" | "error", seconds)."""


@dataclass(frozen=True)
class _Reply:
    text: str
    usage: Usage | None
    finish_reason: str
    logprobs: dict[str, Any] | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class _Found:
    value: Any
    agent: LLMAgent | CannedAgent
    responder: Responder


def summarise(attempts: Sequence[Attempt]) -> str:
    """One clause per agent and model: how often it failed and the last reason."""
    groups: dict[tuple[str, str, bool], list[Attempt]] = {}
    for a in attempts:
        groups.setdefault((a.agent, a.model, a.kind == "unavailable"), []).append(a)
    parts = []
    for (agent, model, unavailable), group in groups.items():
        last = group[-1].error
        if unavailable:
            parts.append(f"{agent} ({model}) unavailable: {last}")
        else:
            times = f" {len(group)} times" if len(group) > 1 else ""
            parts.append(f"{agent} ({model}) failed{times}: {last}")
    return "; ".join(parts)


class Answerer:
    """Runs the route's agent, its fallback models, then the default agent."""

    def __init__(self, clients: ClientRegistry, llm: LLMSettings, observe: CallObserver | None = None) -> None:
        self._clients = clients
        self._llm = llm
        self._backoff = Backoff.from_settings(llm)
        self._observe = observe or (lambda _model, _outcome, _seconds: None)

    async def answer(
        self,
        table: RouteTable,
        route: str,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        forwarded: Forwarded = NOTHING,
    ) -> Answer:
        """The complete answer of the agent for `route` in `table` (or of a fallback)."""

        async def call(conn: Connection, agent: LLMAgent, model: str, timeout: float) -> _Reply:
            response = await conn.client.chat.completions.create(
                **self._request(agent, model, messages, max_tokens), **forwarded.params, timeout=timeout
            )
            if not response.choices:
                raise EmptyReply("the response holds no choices")
            choice = response.choices[0]
            logprobs = choice.logprobs.model_dump() if choice.logprobs is not None else None
            calls = tuple(call.model_dump(exclude_none=True) for call in choice.message.tool_calls or ())
            finish = choice.finish_reason or "stop"
            return _Reply(choice.message.content or "", usage_of(response.usage), finish, logprobs, calls)

        found = await self._chain(table, route, call, lambda text: _Reply(text, NO_USAGE, "stop"), forwarded)
        reply: _Reply = found.value
        return Answer(found.responder, reply.text, reply.usage, reply.finish_reason, reply.logprobs, reply.tool_calls)

    async def stream(
        self,
        table: RouteTable,
        route: str,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        forwarded: Forwarded = NOTHING,
    ) -> AnswerStream:
        """The answer as a stream, opened and read up to its first piece (text or a tool call)."""

        async def call(conn: Connection, agent: LLMAgent, model: str, timeout: float) -> Primed:
            extra: dict[str, Any] = {}
            if self._llm.stream_usage:
                extra["stream_options"] = {"include_usage": True}
            upstream = await conn.client.chat.completions.create(
                **self._request(agent, model, messages, max_tokens),
                **forwarded.params,
                stream=True,
                timeout=timeout,
                **extra,
            )
            try:
                return await prime(upstream)
            except BaseException:
                await upstream.close()
                raise

        found = await self._chain(table, route, call, lambda text: text, forwarded)
        if isinstance(found.agent, CannedAgent):
            return AnswerStream(found.responder, once(found.value), StreamTail(NO_USAGE), nothing)
        primed: Primed = found.value
        pieces = self._rest(primed, found.responder, found.agent.timeout_s)
        return AnswerStream(found.responder, pieces, primed.tail, primed.stream.close)

    # -- one LLM request -------------------------------------------------------------------
    @staticmethod
    def _request(
        agent: LLMAgent, model: str, messages: Sequence[ChatMessage], max_tokens: int | None
    ) -> dict[str, Any]:
        payload: list[dict[str, Any]] = []
        if agent.system_prompt.strip():
            payload.append({"role": "system", "content": agent.system_prompt})
        payload.extend(dict(m.payload) for m in messages)  # as the caller sent them, tool calls included
        cap = agent.max_tokens if max_tokens is None else min(agent.max_tokens, max_tokens)
        return {
            "model": model,
            "messages": payload,
            "temperature": agent.temperature,
            "max_tokens": cap,
        }

    async def _rest(self, primed: Primed, responder: Responder, timeout: float) -> AsyncGenerator[Piece, None]:
        """The primed stream's pieces; a failure mid-stream raises NoAnswer."""
        if primed.head:
            yield primed.head
        if primed.ended:
            return
        while True:
            try:
                async with asyncio.timeout(timeout):
                    chunk = await primed.chunks.__anext__()
            except StopAsyncIteration:
                return
            except Exception as exc:
                failure = classify_failure(exc, timeout, self._clients.redact)
                log.warning(
                    "route %s: %s (%s) failed mid-stream: %s",
                    responder.route,
                    responder.agent,
                    responder.model,
                    failure.reason,
                )
                attempt = Attempt(responder.agent, responder.model, failure.kind, failure.reason, failure.status)
                raise self._no_answer(responder.route, [*responder.attempts, attempt], mid_stream=True) from None
            piece = absorb(chunk, primed.tail)
            if piece:
                yield piece

    # -- the chain -------------------------------------------------------------------------
    async def _chain(
        self,
        table: RouteTable,
        route: str,
        call: Call[Any],
        canned: Callable[[str], Any],
        forwarded: Forwarded,
    ) -> _Found:
        deadline = asyncio.get_running_loop().time() + self._llm.deadline_s
        attempts: list[Attempt] = []
        agents = [table.agent_for(route)]
        if table.get(route) is not None:
            agents.append(table.default_agent)
        for agent in agents:
            fell_back = agent is not agents[0]
            if isinstance(agent, CannedAgent):
                if forwarded.needs_llm:
                    refusal = canned_refusal(forwarded.needs_llm)
                    if not fell_back:
                        raise ParameterRefused(
                            f"{refusal}: route {route!r} is answered by the canned agent {agent.name}",
                            field=forwarded.needs_llm[0],
                        )
                    attempts.append(Attempt(agent.name, "canned", "unavailable", refusal))
                    continue
                offline = fell_back and bool(attempts) and all(a.kind == "unavailable" for a in attempts)
                text = offline_reply(route, attempts) if offline else agent.reply
                responder = self._responder(route, agent.name, "canned", "canned", attempts, fell_back=fell_back)
                return _Found(canned(text), agent, responder)
            found = await self._try_agent(route, agent, call, attempts, deadline)
            if found is not None:
                model, value = found
                fell_back = fell_back or model != agent.model
                responder = self._responder(route, agent.name, "llm", model, attempts, fell_back=fell_back)
                return _Found(value, agent, responder)
        raise self._no_answer(route, attempts)

    async def _try_agent(
        self,
        route: str,
        agent: LLMAgent,
        call: Call[Any],
        attempts: list[Attempt],
        deadline: float,
    ) -> tuple[str, Any] | None:
        conn = self._clients.lookup(agent)
        if isinstance(conn, Unavailable):
            attempts.append(Attempt(agent.name, agent.model, "unavailable", conn.reason))
            log.info("route %s: agent %s skipped: %s", route, agent.name, conn.reason)
            return None
        loop = asyncio.get_running_loop()
        for model in dict.fromkeys((agent.model, *agent.fallback_models)):
            failure: Failure | None = None
            for retry in range(agent.retries + 1):
                if failure is not None:
                    pause = self._backoff.delay(retry, retry_after=failure.retry_after)
                    await asyncio.sleep(max(0.0, min(pause, deadline - loop.time())))
                remaining = deadline - loop.time()
                if remaining <= 0:
                    reason = f"answer deadline of {self._llm.deadline_s:g}s exceeded"
                    attempts.append(Attempt(agent.name, model, "timeout", reason))
                    return None
                timeout = min(agent.timeout_s, remaining)
                started = loop.time()
                try:
                    async with asyncio.timeout(timeout):
                        value = await call(conn, agent, model, timeout)
                    self._observe(model, "ok", loop.time() - started)
                    return model, value
                except Exception as exc:
                    failure = classify_failure(exc, timeout, self._clients.redact)
                    self._observe(model, failure.kind, loop.time() - started)
                    attempts.append(Attempt(agent.name, model, failure.kind, failure.reason, failure.status))
                    log.warning(
                        "route %s: %s (%s) try %d of %d failed: %s",
                        route,
                        agent.name,
                        model,
                        retry + 1,
                        agent.retries + 1,
                        failure.reason,
                    )
                    if not failure.retryable:
                        break
                    if failure.retry_after is not None and failure.retry_after > self._backoff.max_s:
                        # Waiting that long would hold the caller; the next model may answer now.
                        log.info(
                            "route %s: %s asks for %.0fs before a retry; trying the next model",
                            route,
                            model,
                            failure.retry_after,
                        )
                        break
        return None

    @staticmethod
    def _responder(
        route: str,
        agent: str,
        kind: Literal["llm", "canned"],
        model: str,
        attempts: Sequence[Attempt],
        *,
        fell_back: bool,
    ) -> Responder:
        reason = summarise(attempts) if fell_back and attempts else None
        return Responder(route, agent, kind, model, reason, tuple(attempts))

    @staticmethod
    def _no_answer(route: str, attempts: Sequence[Attempt], *, mid_stream: bool = False) -> NoAnswer:
        reached = [a for a in attempts if a.kind != "unavailable"]
        timed_out = bool(reached) and all(a.kind == "timeout" for a in reached)
        if mid_stream:
            timed_out = attempts[-1].kind == "timeout"
        what = "the answer broke off mid-stream" if mid_stream else "no agent could answer"
        return NoAnswer(
            f"{what} for route {route!r}: {summarise(attempts)}",
            timed_out=timed_out,
            route=route,
            models_tried=list(dict.fromkeys(a.model for a in attempts if a.kind != "unavailable")),
            attempts=[a.to_dict() for a in attempts],
        )
