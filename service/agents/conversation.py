"""Chat history as the router and the agents see it, validated from what callers sent.

Every message of OpenAI's chat schema is accepted (`service.agents.chat_messages`) and handed
to the agent that answers exactly as it was sent, behind that agent's own system prompt. The
router reads less (`RolePolicy`, measured in BENCHMARKS.md, "What each role contributes"):

- the routed message is the last user message that holds text; what follows it (the agent's
  tool calls and their results within the turn) is the agent's work on it and not read, so a
  tool round trip stays on the route its user message chose;
- user and assistant messages are read as they are, each stripped and cut to the query limit;
  an assistant message's `tool_calls` are not read;
- tool results (`tool`, legacy `function`) are not read: the agent's reply that follows them
  usually says what they found, and then reading them as assistant evidence costs SGD 0.7 to
  1.0 points of accuracy (MultiWOZ: +0.1 to +0.3); they gain only when the reply names
  nothing (+2.4 and +1.1). A tool result, however large, costs the router nothing.
  (`RolePolicy(tool_results=True)` reads them, each cut to `tool_result_chars`, the last
  `tool_results_per_exchange` of an exchange: what the benchmark compares.)
- system and developer prompts are not read: they set up the agent, not the topic, and are
  mostly the same for every chat of a client; read, they changed accuracy by -0.3 to +0.0 points;
- image, audio and file parts are skipped and counted (`Conversation.skipped_parts`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from router_core import Turn
from service.agents.chat_messages import ReadMessage, read_message
from service.agents.errors import MessagesRefused
from service.query_text import checked_query, is_meaningful, routed_text
from service.settings import LimitSettings

TOOL_ROLES = ("tool", "function")
SYSTEM_ROLES = ("system", "developer")


@dataclass(frozen=True)
class RolePolicy:
    """What each role contributes to routing (the service reads with `DEFAULT_POLICY`)."""

    tool_results: bool = False  # tool and function results read as assistant messages
    system_prompts: bool = False  # system and developer prompts read as assistant messages
    tool_result_chars: int = 500  # of each tool result: its first characters
    tool_results_per_exchange: int = 2  # of the tool results between two user messages: the last ones


DEFAULT_POLICY = RolePolicy()


@dataclass(frozen=True)
class ChatMessage:
    """One message of the history, as sent (passed to the agent unchanged)."""

    role: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class Conversation:
    """The history, the routed user message, and the messages the router reads."""

    messages: tuple[ChatMessage, ...]
    query: str  # the routed user message as routed
    turns: tuple[Turn, ...]  # the messages the router reads, indexed as in the request
    skipped_parts: Mapping[str, int] = field(default_factory=dict)  # non-text parts, by type

    @classmethod
    def single(cls, query: str, limits: LimitSettings) -> Conversation:
        """A conversation of one user message."""
        text = checked_query(query, limits.max_query_chars, field="query")
        return cls((ChatMessage("user", {"role": "user", "content": text}),), text, (Turn(0, "user", text),))


def build_conversation(
    messages: Sequence[Mapping[str, Any]],
    limits: LimitSettings,
    policy: RolePolicy = DEFAULT_POLICY,
) -> Conversation:
    """Validate chat messages (OpenAI's schema, as JSON objects); raise a 4xx error naming the
    first problem."""
    if not messages:
        raise MessagesRefused("messages is empty; send at least one user message", field="messages")
    if len(messages) > limits.max_messages:
        raise MessagesRefused(
            f"{len(messages)} messages; the limit is {limits.max_messages}",
            field="messages",
            limit=limits.max_messages,
        )
    read = [read_message(m, f"messages[{i}]") for i, m in enumerate(messages)]
    total = sum(len(m.text) for m in read)
    if total > limits.max_conversation_chars:
        raise MessagesRefused(
            f"messages hold {total} characters; the limit is {limits.max_conversation_chars}",
            field="messages",
            limit=limits.max_conversation_chars,
        )
    routed = _routed_position(read)
    # Routed on its first max_query_chars characters once stripped (the embedding model reads
    # fewer tokens than that anyway); the agent answers the whole message. A pasted log must not
    # be a 400.
    query = checked_query(
        routed_text(read[routed].text, limits.max_query_chars),
        limits.max_query_chars,
        field=f"messages[{routed}].content",
    )
    turns = tuple(
        Turn(i, "user", query) if i == routed else turn
        for i, turn in _read_turns(read[: routed + 1], limits.max_query_chars, policy)
    )
    skipped: Counter[str] = Counter()
    for m in read:
        skipped.update(m.skipped)
    history = tuple(ChatMessage(m.role, dict(raw)) for m, raw in zip(read, messages, strict=True))
    return Conversation(history, query, turns, dict(skipped))


def _routed_position(read: Sequence[ReadMessage]) -> int:
    """The routed message: the last user message, unless it holds only skipped parts (an image
    alone), then the user message before it."""
    users = [i for i, m in enumerate(read) if m.role == "user"]
    if not users:
        raise MessagesRefused("no user message to answer", field="messages")
    for i in reversed(users):
        if is_meaningful(read[i].text) or not read[i].skipped:
            return i
    raise MessagesRefused(
        "no user message holds text to route (image, audio and file parts are not read by the router)",
        field="messages",
    )


def _read_turns(read: Sequence[ReadMessage], max_chars: int, policy: RolePolicy) -> list[tuple[int, Turn]]:
    """(position, turn) of each message the router reads, under `policy` (see the module doc)."""
    out: list[tuple[int, Turn]] = []
    tools_after = 0  # tool results read since the next user message, walking backwards
    for i in range(len(read) - 1, -1, -1):
        m = read[i]
        if m.role == "user":
            tools_after = 0
            turn = Turn(i, "user", routed_text(m.text, max_chars))
        elif m.role == "assistant" or (m.role in SYSTEM_ROLES and policy.system_prompts):
            turn = Turn(i, "assistant", routed_text(m.text, max_chars))
        elif m.role in TOOL_ROLES and policy.tool_results and tools_after < policy.tool_results_per_exchange:
            turn = Turn(i, "assistant", routed_text(m.text, min(max_chars, policy.tool_result_chars)))
            tools_after += bool(turn.text)
        else:
            continue
        if turn.text:
            out.append((i, turn))
    return out[::-1]
