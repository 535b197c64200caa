"""Why a decision went where it did: the one vocabulary of reasons, and their codes.

Every engine speaks it: the vote (`router_core.engine`), the conversation rule
(`router_core.conversation_engine`) and the LLM step (`router_core.llm_routing`). The
vectorised engines carry a reason as an integer code, its position in `REASONS`.
"""

from __future__ import annotations

from typing import Literal, get_args

Reason = Literal[
    "no_neighbours",  # the index returned nothing: the default route
    "below_threshold",  # nothing cleared the bar: the default route
    "ambiguous",  # the winner's lead was under the margin: the default route
    "vote",  # the vote over the routed message's neighbours decided
    "standalone",  # a new, unrelated request in a conversation, routed on its own
    "off_topic",  # a new, unrelated request in a conversation that no route takes: the default route
    "context",  # the conversation's turns together decided, the last message among them
    "continued",  # a conversation's route carried from earlier turns (the last message has no evidence for it)
    "llm",  # the decision model chose the route
    "llm_none",  # the decision model said no route fits: the default route
    "llm_unrecognised",  # the decision model answered outside the allowed routes: the default route
    "llm_failed",  # mode llm, and the decision model failed or timed out: the default route
]
DecidedBy = Literal["vote", "llm"]

REASONS: tuple[Reason, ...] = get_args(Reason)
"""Every reason, by code."""


def code(reason: Reason) -> int:
    """The integer the vectorised engines carry for `reason`."""
    return REASONS.index(reason)


NO_NEIGHBOURS = code("no_neighbours")
BELOW_THRESHOLD = code("below_threshold")
AMBIGUOUS = code("ambiguous")
VOTE = code("vote")
STANDALONE = code("standalone")
OFF_TOPIC = code("off_topic")
CONTEXT = code("context")
CONTINUED = code("continued")
