"""One message of OpenAI's chat schema, read: its role, its text and the parts the router skips.

Roles `system`, `developer`, `user`, `assistant`, `tool` and the legacy `function`. `content` is
a string, a list of parts (text parts joined by newlines; image, audio, file, refusal and any
other parts skipped and counted by type, never an error) or null where the schema allows it
(an assistant message with `tool_calls` or `function_call`, a legacy function result). A tool
result names the call it answers (`tool_call_id`), a legacy function result its function
(`name`). Anything else is MessagesRefused (400) naming the field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.agents.errors import MessagesRefused

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
SKIPPED_PARTS = ("image_url", "input_audio", "file", "refusal")
"""Part types counted by name when skipped; any other non-text type is counted as `other`."""


@dataclass(frozen=True)
class ReadMessage:
    """A message as the router reads it: its role, its text ("" when it has none) and the
    parts it skipped, by type."""

    role: str
    text: str
    skipped: Mapping[str, int]


def read_message(message: Mapping[str, Any], field: str) -> ReadMessage:
    """Validate one message (`field` names it, e.g. `messages[2]`); raise MessagesRefused
    naming the first problem."""
    role = message.get("role")
    if role not in ROLES:
        raise MessagesRefused(
            f"{field}.role is {role!r}; expected one of {', '.join(ROLES)}",
            field=f"{field}.role",
        )
    content = message.get("content")
    if content is None and not _may_omit_content(message):
        raise MessagesRefused(f"{field}.content is missing: {_needs_content(role)}", field=f"{field}.content")
    if role == "tool" and not message.get("tool_call_id"):
        raise MessagesRefused(
            f"{field}.tool_call_id is missing: a tool message answers a tool call by its id",
            field=f"{field}.tool_call_id",
        )
    if role == "function" and not message.get("name"):
        raise MessagesRefused(
            f"{field}.name is missing: a function message names the function it answers", field=f"{field}.name"
        )
    text, skipped = content_text(content, field=f"{field}.content")
    return ReadMessage(role, text, skipped)


def _may_omit_content(message: Mapping[str, Any]) -> bool:
    """An assistant message that calls tools (or the legacy function), and a legacy function
    result, may have null content."""
    role = message.get("role")
    if role == "assistant":
        return bool(message.get("tool_calls") or message.get("function_call") or message.get("refusal"))
    return role == "function"


def _needs_content(role: str) -> str:
    if role == "assistant":
        return "an assistant message needs content unless it has tool_calls"
    return f"a {role} message needs content (a string or a list of parts)"


def content_text(content: object, *, field: str) -> tuple[str, Counter[str]]:
    """Plain text of a message's content (a string, or its text parts joined by newlines) and
    the non-text parts skipped, counted by type ("" and nothing for null content)."""
    skipped: Counter[str] = Counter()
    if content is None:
        return "", skipped
    if isinstance(content, str):
        return content, skipped
    if not isinstance(content, list):
        raise MessagesRefused(f"{field} must be a string, a list of parts or null", field=field)
    texts: list[str] = []
    for i, part in enumerate(content):
        where = f"{field}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str) or not kind:
            raise MessagesRefused(f"{where}.type is missing: each part is an object with a type", field=f"{where}.type")
        if kind != "text":
            skipped[kind if kind in SKIPPED_PARTS else "other"] += 1
            continue
        text = part.get("text")
        if not isinstance(text, str):
            raise MessagesRefused(f"{where}.text must be a string in a text part", field=f"{where}.text")
        texts.append(text)
    return "\n".join(texts), skipped
