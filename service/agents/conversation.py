"""Chat history as the router and the agents see it, validated from what callers sent.

The router routes the conversation (its user and assistant messages, each stripped and cut to
the query limit) and hands the whole history to the agent that answers, behind that agent's
own system prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from router_core import Turn
from service.errors import InvalidMessages, UnsupportedParameter
from service.query_text import checked_query, is_meaningful, routed_text
from service.settings import LimitSettings

Role = Literal["system", "user", "assistant"]
_ROLES: Mapping[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
}


@dataclass(frozen=True)
class ChatMessage:
    """One message of the history passed to an agent."""

    role: Role
    content: str


@dataclass(frozen=True)
class Conversation:
    """The history, the latest user message, and the messages the router reads."""

    messages: tuple[ChatMessage, ...]
    query: str  # the latest user message as routed
    turns: tuple[Turn, ...]  # user and assistant messages as routed, indexed as in the request

    @classmethod
    def single(cls, query: str, limits: LimitSettings) -> Conversation:
        """A conversation of one user message."""
        text = checked_query(query, limits.max_query_chars, field="query")
        return cls((ChatMessage("user", text),), text, (Turn(0, "user", text),))


def content_text(content: str | Sequence[Mapping[str, Any]] | None, *, field: str) -> str | None:
    """Plain text of a message's content: a string, or a list of text parts joined."""
    if content is None or isinstance(content, str):
        return content
    texts: list[str] = []
    for i, part in enumerate(content):
        kind = part.get("type")
        text = part.get("text")
        if kind != "text" or not isinstance(text, str):
            raise UnsupportedParameter(
                f"{field}[{i}] has type {kind!r}; only text content is supported",
                field=f"{field}[{i}]",
            )
        texts.append(text)
    return "\n".join(texts)


def build_conversation(
    messages: Sequence[tuple[str, str | Sequence[Mapping[str, Any]] | None]],
    limits: LimitSettings,
) -> Conversation:
    """Validate (role, content) pairs; raise a 4xx error naming the first problem."""
    if not messages:
        raise InvalidMessages("messages is empty; send at least one user message", field="messages")
    if len(messages) > limits.max_messages:
        raise InvalidMessages(
            f"{len(messages)} messages; the limit is {limits.max_messages}",
            field="messages",
            limit=limits.max_messages,
        )
    history: list[ChatMessage] = []
    total = 0
    last_user: int | None = None
    for i, (raw_role, raw_content) in enumerate(messages):
        field = f"messages[{i}]"
        role = _ROLES.get(raw_role)
        if role is None:
            raise InvalidMessages(
                f"{field}.role is {raw_role!r}; expected one of system, developer, user, "
                "assistant (the router does not call tools)",
                field=f"{field}.role",
            )
        text = content_text(raw_content, field=f"{field}.content")
        if text is None:
            raise InvalidMessages(f"{field}.content is missing", field=f"{field}.content")
        total += len(text)
        if role == "user":
            last_user = i
        history.append(ChatMessage(role, text))
    if total > limits.max_conversation_chars:
        raise InvalidMessages(
            f"messages hold {total} characters; the limit is {limits.max_conversation_chars}",
            field="messages",
            limit=limits.max_conversation_chars,
        )
    if last_user is None:
        raise InvalidMessages("no user message to answer", field="messages")
    # Routed on its first max_query_chars characters once stripped (the embedding model reads
    # fewer tokens than that anyway); the agent answers the whole message. A pasted log must not
    # be a 400.
    field = f"messages[{last_user}].content"
    query = checked_query(
        routed_text(history[last_user].content, limits.max_query_chars), limits.max_query_chars, field=field
    )
    turns = tuple(
        Turn(i, m.role, query if i == last_user else routed_text(m.content, limits.max_query_chars))
        for i, m in enumerate(history)
        if m.role in ("user", "assistant") and (i == last_user or is_meaningful(m.content))
    )
    return Conversation(tuple(history), query, turns)
