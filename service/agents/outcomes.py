"""What an answer is: who answered, with which model, the text and the token usage."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from router_llm.failures import Attempt


@dataclass(frozen=True)
class Usage:
    """Token counts as the endpoint reported them (zeros for canned agents)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


NO_USAGE = Usage(0, 0, 0)


@dataclass(frozen=True)
class Responder:
    """Who answered a route: the agent, its kind and model, and why it was not the first choice.

    `model` is the LLM model that answered, or "canned". `fallback_reason` is None when the
    route's own agent answered with its primary model (perhaps after retries, which
    `attempts` lists).
    """

    route: str
    agent: str
    kind: Literal["llm", "canned"]
    model: str
    fallback_reason: str | None
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class Answer:
    """A complete answer: text, or the tools the model calls (`tool_calls` as OpenAI's message
    holds them: id, type, function name and arguments), or both."""

    responder: Responder
    text: str
    usage: Usage | None
    finish_reason: str = "stop"
    logprobs: dict[str, Any] | None = None  # the endpoint's, when the caller asked for them
    tool_calls: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Piece:
    """The next piece of a streamed answer: text, tool-call deltas (OpenAI's
    `delta.tool_calls` items as the endpoint sent them: index, then id, function name and
    pieces of the arguments), or both."""

    text: str = ""
    tool_calls: tuple[dict[str, Any], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.text or self.tool_calls)


@dataclass
class StreamTail:
    """What is known only once a stream has ended."""

    usage: Usage | None = None
    finish_reason: str = "stop"
    piece_logprobs: dict[str, Any] | None = None  # of the piece last yielded, when asked for


@dataclass
class AnswerStream:
    """A streamed answer whose first piece has arrived: nothing fails over after this.

    Iterate `pieces` for the text and tool calls; `tail` holds usage and finish reason once it ends. The
    iteration raises NoAnswer when the endpoint fails mid-stream. Always `aclose()`.
    """

    responder: Responder
    pieces: AsyncGenerator[Piece, None]
    tail: StreamTail
    _close: Callable[[], Awaitable[None]]

    async def aclose(self) -> None:
        """Stop the pieces and release the upstream connection."""
        try:
            await self.pieces.aclose()
        finally:
            await self._close()
