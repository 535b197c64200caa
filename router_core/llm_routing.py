"""The LLM decision layer, the pure part: when to ask, what to ask, how to read the answer.

Modes (`_router.yaml: mode`):
- `embedding` (default): the k-NN vote decides; no LLM is ever asked.
- `llm`: a decision model picks one route from the route names and descriptions (and a few
  examples per route), or "none"; routes need no examples.
- `hybrid`: the vote decides, and only decisions in the uncertain band (`escalates`) are put to
  the decision model, which picks among the vote's best candidates or "none". When the model
  fails, times out or answers outside the list, the vote's decision stands.

Which mode asks what, and how an answer settles a decision, is decided in one place:
`router_core.pipeline` (`question`, `settle`); this module holds the pieces it uses.

The model is asked for JSON `{"route": <one of the allowed names or "none">}` (a JSON schema
whose route field is an enum, where the endpoint supports structured output); `read_choice`
parses strictly: anything else is unrecognised, never an exception. The call itself lives in
`router_llm.decider`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from router_core.constants import MAX_DESCRIPTION_CHARS, MAX_EXAMPLE_CHARS, MAX_MESSAGE_CHARS
from router_core.decision import Decision
from router_core.neighbours import BoolArray, FloatArray
from router_core.params import DecisionParams, LLMRoutingParams
from router_core.reasons import Reason
from router_core.routes import RouteTable

NONE = "none"


@dataclass(frozen=True)
class BandInputs:
    """What the uncertain band reads of N decisions, as arrays."""

    score: FloatArray  # best similarity
    threshold: FloatArray  # the threshold of the winner (of the best-ranked route when none won)
    lead: FloatArray  # the winner's lead over the runner-up, as a share of the vote
    routed: BoolArray  # a route won
    ambiguous: BoolArray  # the vote fell back as ambiguous
    eligible: BoolArray  # there are candidates to offer

    @classmethod
    def of(cls, decisions: Sequence[Decision], params: DecisionParams) -> BandInputs:
        """The band's inputs for `decisions` made under `params`."""

        def threshold(d: Decision) -> float:
            return params.threshold_for(d.route if not d.fallback else (d.ranking[0] if d.ranking else ""))

        return cls(
            score=np.array([d.score for d in decisions], np.float64),
            threshold=np.array([threshold(d) for d in decisions], np.float64),
            lead=np.array([d.lead for d in decisions], np.float64),
            routed=np.array([not d.fallback for d in decisions], bool),
            ambiguous=np.array([d.reason == "ambiguous" for d in decisions], bool),
            eligible=np.array([bool(d.ranking) and d.reason != "no_neighbours" for d in decisions], bool),
        )


def escalation_mask(inputs: BandInputs, llm: LLMRoutingParams) -> BoolArray:
    """Which decisions a hybrid router puts to the decision model: an ambiguous vote, a best
    similarity in [threshold - band_below, threshold + band_above), or a routed winner leading
    the runner-up by less than `min_lead` of the vote."""
    in_band = (inputs.score >= inputs.threshold - llm.band_below) & (inputs.score < inputs.threshold + llm.band_above)
    close = inputs.routed & (inputs.lead < llm.min_lead)
    mask: BoolArray = inputs.eligible & (inputs.ambiguous | in_band | close)
    return mask


def escalates(decision: Decision, params: DecisionParams, llm: LLMRoutingParams) -> bool:
    """Whether a hybrid router puts this vote's decision to the decision model."""
    return bool(escalation_mask(BandInputs.of([decision], params), llm)[0])


def candidates(decision: Decision, llm: LLMRoutingParams) -> tuple[str, ...]:
    """The routes a hybrid escalation offers, best first."""
    return decision.ranking[: llm.candidates]


@dataclass(frozen=True)
class RouteChoice:
    """What the decision model answered, read strictly."""

    route: str | None  # a route name, or None for "none"
    recognised: bool


def read_choice(text: str, allowed: Sequence[str]) -> RouteChoice:
    """Parse the model's answer: JSON `{"route": name}` (or a bare name); anything not in
    `allowed` or "none" is unrecognised."""
    raw = text.strip()
    value: Any = raw
    if raw.startswith("{"):
        try:
            value = json.loads(raw).get("route")
        except (ValueError, AttributeError):
            return RouteChoice(None, recognised=False)
    if not isinstance(value, str):
        return RouteChoice(None, recognised=False)
    name = value.strip().strip("\"'`.").strip()
    if name == NONE:
        return RouteChoice(None, recognised=True)
    if name in allowed:
        return RouteChoice(name, recognised=True)
    return RouteChoice(None, recognised=False)


def answer_schema(allowed: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of the answer (OpenAI `response_format` json_schema)."""
    return {
        "name": "route_choice",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"route": {"type": "string", "enum": [*allowed, NONE]}},
            "required": ["route"],
            "additionalProperties": False,
        },
    }


SYSTEM_PROMPT = (
    "You route a user's message to the one specialist that should answer it. Reply with JSON "
    '{"route": "<name>"} where <name> is exactly one of the route names listed, or "none" when '
    "no route fits (small talk, other topics). Reply with nothing else."
)


def prompt_messages(
    table: RouteTable,
    allowed: Sequence[str],
    conversation: Sequence[tuple[str, str]],
    llm: LLMRoutingParams,
) -> list[dict[str, str]]:
    """The chat messages asking the model to choose among `allowed` for the last user message of
    `conversation` ((role, text) pairs, the routed message last)."""
    lines = ["Routes:"]
    for name in allowed:
        route = table.get(name)
        if route is None:
            continue
        lines.append(f"- {name}: {_cut(route.description, MAX_DESCRIPTION_CHARS)}")
        for example in route.examples[: llm.examples_per_route]:
            lines.append(f'    e.g. "{_cut(example, MAX_EXAMPLE_CHARS)}"')
    lines.append(f"- {NONE}: none of the above")
    *earlier, (_, routed) = conversation
    shown = earlier[-llm.context_messages :] if llm.context_messages else []
    if shown:
        lines.append("\nConversation so far:")
        lines.extend(f"{role}: {_cut(text, MAX_MESSAGE_CHARS)}" for role, text in shown)
    lines.append(f"\nMessage to route:\n{_cut(routed, MAX_MESSAGE_CHARS)}")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def apply_choice(vote: Decision, choice: RouteChoice, default_route: str) -> Decision:
    """The decision after the model's answer: its route, the default route for "none", or the
    vote's own decision when the answer was unrecognised (hybrid)."""
    if not choice.recognised:
        return vote
    if choice.route is None:
        return replace(vote, route=default_route, fallback=True, reason="llm_none", decided_by="llm")
    return replace(vote, route=choice.route, fallback=False, reason="llm", decided_by="llm")


def llm_only(choice: RouteChoice | None, default_route: str) -> Decision:
    """Mode llm: the decision from the model's answer alone (None: the call failed)."""
    reason: Reason
    if choice is None:
        route, reason = default_route, "llm_failed"
    elif not choice.recognised:
        route, reason = default_route, "llm_unrecognised"
    elif choice.route is None:
        route, reason = default_route, "llm_none"
    else:
        route, reason = choice.route, "llm"
    return Decision(
        route=route,
        fallback=reason != "llm",
        score=0.0,
        reason=reason,
        votes=(),
        neighbours=(),
        lead=math.inf,
        decided_by="llm",
    )


def allowed_routes(table: RouteTable) -> tuple[str, ...]:
    """Every route of the table, by name."""
    return tuple(r.name for r in table.routes)


@dataclass(frozen=True)
class Question:
    """What to ask the decision model about one request, and the cache key of the answer."""

    allowed: tuple[str, ...]
    messages: list[dict[str, str]]
    key: tuple[object, ...]  # the offered routes and the shown conversation, normalised


def ask_about(table: RouteTable, allowed: Sequence[str], conversation: Sequence[tuple[str, str]]) -> Question:
    """The question offering `allowed` for the last user message of `conversation` ((role,
    text) user and assistant messages, the routed message last)."""
    shown = conversation[-(table.llm.context_messages + 1) :]
    key = (tuple(allowed), tuple((role, " ".join(text.split()).casefold()) for role, text in shown))
    return Question(tuple(allowed), prompt_messages(table, allowed, conversation, table.llm), key)


def agrees(vote: Decision, choice: RouteChoice, default_route: str) -> bool:
    """Whether a recognised answer names the vote's own route (or "none" where it fell back)."""
    return (choice.route or default_route) == vote.route
