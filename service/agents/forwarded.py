"""What a caller asks of the answer beyond the messages, and what a canned reply cannot give.

Chat completion parameters that shape the model's output (`tools`, `tool_choice`,
`parallel_tool_calls`, `response_format`, `logprobs`, `top_logprobs`, `prediction`) are
forwarded to the agent's endpoint as given; the endpoint refuses what it does not support (the
answer then falls back as for any other error). A canned reply can honour neither tools, nor a
response format, nor log probabilities: a route answered by a canned agent refuses them (400
naming the field), and the chain never falls back to a canned agent for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from router_llm.failures import Attempt


@dataclass(frozen=True)
class Forwarded:
    """Parameters sent to the agent's endpoint with the messages, and those of them only an
    LLM can honour (field names, as the caller sent them)."""

    params: Mapping[str, Any] = field(default_factory=dict)
    needs_llm: tuple[str, ...] = ()


NOTHING = Forwarded()


def canned_refusal(needs_llm: Sequence[str]) -> str:
    """Why a canned agent was passed over."""
    return f"a canned reply cannot honour {', '.join(needs_llm)}"


def offline_reply(route: str, attempts: Sequence[Attempt]) -> str:
    """The answer when the route's agent has no endpoint to call (every attempt was skipped as
    unavailable) and the default agent is canned: say so plainly, naming the route, instead of
    the default agent's off-topic reply."""
    agents = ", ".join(dict.fromkeys(a.agent for a in attempts))
    reason = attempts[-1].error if attempts else "no LLM endpoint configured"
    return (
        f"This request was routed to {route!r}, but its agent ({agents}) cannot answer here: {reason}. "
        "No answer was generated."
    )
