"""A fake LLM behaviour that calls tools, then answers from their results, as a real model does.

`UsesTools` is a `Scripted` behaviour of devkit.fake_llm's server (script it, or make it
standing, for a model name). For a request whose last message is not a tool result and that
offers function tools, it answers with `tool_calls` (`finish_reason: "tool_calls"`, content
null): `calls` calls of the function named `function` (default: the first tool offered), with
`arguments`, ids `call_<n>_<hash of the last user message>`. Streamed, as OpenAI streams them:
a role chunk, then per call a first delta (index, id, type, function name, empty arguments)
and the arguments in `chunks` pieces, then the finish. For a request whose last message is a
tool result it answers with text: `[<model>] ` and the results of the latest tool calls,
joined by `; ` (streamed in `chunks` pieces). Without tools offered it echoes the last user
message like the default `Reply`.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from devkit.fake_llm import USAGE, FakeLLM, Scripted

STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _pieces(text: str, n: int) -> list[str]:
    """`text` in `n` pieces that join back to it (one empty piece for an empty text)."""
    if not text:
        return [""]
    size = -(-len(text) // max(1, min(n, len(text))))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _last_user(messages: list[dict[str, Any]]) -> str:
    content = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    return content if isinstance(content, str) else json.dumps(content)


def _tool_results(messages: list[dict[str, Any]]) -> list[str]:
    """The contents of the tool messages after the last assistant message."""
    out: list[str] = []
    for m in reversed(messages):
        if m.get("role") != "tool":
            break
        out.append(str(m.get("content")))
    return out[::-1]


@dataclass(frozen=True)
class UsesTools(Scripted):
    """Call a tool, then answer from its result (see the module docstring)."""

    arguments: str = '{"expression": "0.15 * 200"}'
    function: str | None = None
    calls: int = 1
    chunks: int = 3

    def tool_calls(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The calls answering `body` (empty when it offers no function tool)."""
        tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
        if not tools and self.function is None:
            return []
        name = self.function or str(tools[0]["function"]["name"])
        tag = hashlib.sha256(_last_user(body.get("messages", [])).encode("utf-8")).hexdigest()[:8]
        return [
            {"id": f"call_{i}_{tag}", "type": "function", "function": {"name": name, "arguments": self.arguments}}
            for i in range(self.calls)
        ]

    async def respond(self, model: str, body: dict[str, Any], w: Any) -> bool:
        messages = body.get("messages", [])
        results = _tool_results(messages)
        calls = [] if results else self.tool_calls(body)
        text = f"[{model}] " + ("; ".join(results) if results else _last_user(messages))
        base = {"id": "chatcmpl-fake-tools", "created": int(time.time()), "model": model}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None if calls else text}
            if calls:
                message["tool_calls"] = calls
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
            await FakeLLM._json(w, 200, {**base, "object": "chat.completion", "choices": [choice], "usage": USAGE})
            return True
        w.write(STREAM_HEAD)

        async def send(delta: dict[str, Any], finish: str | None = None) -> None:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            event = {**base, "object": "chat.completion.chunk", "choices": [choice]}
            await FakeLLM._chunk(w, b"data: " + json.dumps(event).encode() + b"\n\n")

        await send({"role": "assistant", "content": None})
        for i, call in enumerate(calls):
            head = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
            await send({"tool_calls": [{"index": i, **head}]})
            for piece in _pieces(call["function"]["arguments"], self.chunks):
                await send({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
        if not calls:
            for piece in _pieces(text, self.chunks):
                await send({"content": piece})
        await send({}, "tool_calls" if calls else "stop")
        await FakeLLM._chunk(w, b"data: [DONE]\n\n")
        w.write(b"0\r\n\r\n")
        await w.drain()
        return True
