"""Reading an endpoint's streamed answer: opened, then read up to its first piece.

A piece is text or tool-call deltas (a model that calls tools streams no text at all); usage,
the finish reason and the last piece's log probabilities go to the stream's tail. A stream that
is not server-sent events, or that ends before a single chunk, is NotAStream (the chain fails
over, as for any other error before the first piece).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from openai import AsyncStream
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionChunk

from router_llm.failures import NotAStream
from service.agents.outcomes import Piece, StreamTail, Usage


@dataclass
class Primed:
    """An upstream stream read up to its first piece."""

    stream: AsyncStream[ChatCompletionChunk]
    chunks: AsyncIterator[ChatCompletionChunk]
    head: Piece
    tail: StreamTail
    ended: bool


def usage_of(usage: CompletionUsage | None) -> Usage | None:
    """Token usage as the endpoint reported it."""
    if usage is None:
        return None
    return Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)


def absorb(chunk: ChatCompletionChunk, tail: StreamTail) -> Piece:
    """The chunk's text and tool-call deltas; usage and finish reason go to `tail`."""
    if chunk.usage is not None:
        tail.usage = usage_of(chunk.usage)
    if not chunk.choices:
        return Piece()
    choice = chunk.choices[0]
    if choice.finish_reason:
        tail.finish_reason = choice.finish_reason
    tail.piece_logprobs = choice.logprobs.model_dump() if choice.logprobs is not None else None
    calls = tuple(call.model_dump(exclude_none=True) for call in choice.delta.tool_calls or ())
    return Piece(choice.delta.content or "", calls)


def _event_stream(upstream: AsyncStream[ChatCompletionChunk]) -> None:
    """NotAStream unless the endpoint answered with server-sent events: a 200 HTML or JSON body
    holds no event, and would read as an empty answer."""
    media = upstream.response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "text/event-stream":
        raise NotAStream(f"a streamed request was answered with {media or 'no content type'}, not an event stream")


async def prime(upstream: AsyncStream[ChatCompletionChunk]) -> Primed:
    """Read `upstream` up to its first piece (text or a tool call), or to its end."""
    _event_stream(upstream)
    chunks = upstream.__aiter__()
    tail = StreamTail()
    seen = False
    while True:
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            if not seen:
                raise NotAStream("the event stream ended without a single chunk") from None
            return Primed(upstream, chunks, Piece(), tail, ended=True)
        seen = True
        piece = absorb(chunk, tail)
        if piece:
            return Primed(upstream, chunks, piece, tail, ended=False)


async def once(text: str) -> AsyncGenerator[Piece, None]:
    """A canned reply as a stream of one piece."""
    yield Piece(text)


async def nothing() -> None:
    """Nothing to close."""
    return
