"""Routing a whole conversation, statelessly: the history is in every request.

Most user turns of a chat are follow-ups with no domain words ("yes please", "for 4 people",
"and of 350?"). The rule (strategy "evidence"; chosen by measurement on the SGD multi-turn
set, see BENCHMARKS.md), tried in order, the first step that applies deciding:

1. One user message: the single-message decision, unchanged.
2. The last message's own decision is a route and its best similarity clears
   `threshold + gate_above`: that decision (a confident message is a topic switch).
3. The last message is a standalone request (at least `standalone_words` content words) and
   unrelated to the conversation (its best cosine to the earlier messages of the window is
   under `standalone_similarity`): routed as if alone, which is a switch when a route takes it
   and the default route ("off_topic") when none does. A confident off-topic request is never
   carried.
4. Otherwise every message of the window (the last `window` user messages, the assistant
   messages between them, and each user message's context text: the two messages before it and
   itself) adds evidence for each route: the sum over its k nearest examples of that route of
   max(0, similarity - (threshold - floor_below)), weighted by `decay` per user turn back
   (assistant messages by `assistant_weight`, context texts by `context_weight`). The route with
   most evidence wins ("context" when the last message supports it, "continued" when the route
   is carried from earlier turns); no evidence at all is the default route.

Pure: the caller embeds and searches the texts `texts_needed` names and passes their neighbours
and vectors in. Strategy "last_message" routes the last user message alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from router_core.conversation_engine import (
    CONTEXT,
    CONTINUED,
    GATE,
    NO_EVIDENCE,
    OFF_TOPIC,
    OWN,
    STANDALONE,
    ConversationBatch,
    Layout,
    Message,
    Outcome,
    decide,
)
from router_core.conversation_words import DIALOGUE_WORDS, FOLLOW_UP_WORDS, FUNCTION_WORDS
from router_core.decision import Decision, Reason, TurnShare
from router_core.decision import decide as decide_one
from router_core.neighbours import Neighbour
from router_core.params import DecisionParams, specs_of, tunable

Role = Literal["system", "user", "assistant"]
Strategy = Literal["evidence", "last_message"]
Vector = npt.NDArray[np.float32]
_WORD = re.compile(r"[a-z0-9']+")
_IGNORED = FUNCTION_WORDS | DIALOGUE_WORDS | FOLLOW_UP_WORDS
MIN_SHARE = 0.1  # turns listed in a decision carry at least this share of the winner's evidence


@dataclass(frozen=True)
class Turn:
    """One message of a request: its position in the request's messages, role and text."""

    index: int
    role: Role
    text: str


@dataclass(frozen=True)
class ConversationParams:
    """`_router.yaml: conversation:` how the history takes part in the decision."""

    strategy: Strategy = "evidence"
    window: int = tunable(8, "user messages read, the last one included", grid=(4, 6, 8, 10), ge=1, le=50)
    decay: float = tunable(0.5, "weight factor per user turn back", grid=(0.3, 0.4, 0.5, 0.6), ge=0.0, le=1.0)
    floor_below: float = tunable(
        0.15,
        "evidence counts similarity above threshold minus this",
        grid=(0.10, 0.15, 0.20),
        ge=0.0,
        le=1.0,
    )
    gate_above: float | None = tunable(
        0.30,
        "a last message whose best similarity clears threshold plus this decides alone (null: never)",
        grid=(0.25, 0.30, None),
        ge=0.0,
        le=1.0,
        after_vote=True,
    )
    assistant_weight: float = tunable(
        0.5, "weight of assistant messages in the window", grid=(0.0, 0.25, 0.5), ge=0.0, le=2.0
    )
    context_weight: float = tunable(
        0.5, "weight of each user message's context text", grid=(0.0, 0.5, 1.0), ge=0.0, le=2.0
    )
    standalone_similarity: float = tunable(
        0.25,
        "a request less similar than this to every earlier message is routed on its own",
        grid=(0.20, 0.25, 0.30, 0.35),
        ge=-1.0,
        le=1.0,
        after_vote=True,
    )
    standalone_words: int = tunable(
        2,
        "content words a message needs to count as a standalone request",
        grid=(1, 2, 3),
        ge=1,
        le=20,
        after_vote=True,
    )

    def to_dict(self) -> dict[str, object]:
        """JSON form (stored in every index version)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def tunable_values(self) -> dict[str, Any]:
        """The parameters of the rule (everything but the strategy)."""
        return {spec.name: getattr(self, spec.name) for spec in specs_of(ConversationParams)}


def content_words(text: str) -> int:
    """Words that say what a message is about: not function words, not generic dialogue
    words (politeness, confirmation, dates, prices), not numbers."""
    return sum(1 for w in _WORD.findall(text.lower()) if w not in _IGNORED and not w.isdigit())


def layout(turns: Sequence[Turn], window: int) -> Layout:
    """The user and assistant messages of a request the rule may read."""
    return Layout.of([Message(t.index, t.role, t.text) for t in turns if t.role in ("user", "assistant")], window)


def last_user_text(turns: Sequence[Turn]) -> str:
    """The text of the last user message."""
    return next(t.text for t in reversed(turns) if t.role == "user")


def texts_needed(turns: Sequence[Turn], conv: ConversationParams) -> tuple[str, ...]:
    """Every text whose neighbours (and vector) `route_conversations` may read, last message first."""
    if conv.strategy == "last_message":
        return (last_user_text(turns),)
    return tuple(dict.fromkeys(layout(turns, conv.window).texts(with_context=bool(conv.context_weight))))


_REASONS: dict[int, Reason] = {
    GATE: "vote",
    STANDALONE: "standalone",
    OFF_TOPIC: "off_topic",
    CONTEXT: "context",
    CONTINUED: "continued",
    NO_EVIDENCE: "below_threshold",
}


def route_conversations(
    requests: Sequence[Sequence[Turn]],
    neighbours: Mapping[str, Sequence[Neighbour]],
    vectors: Mapping[str, Vector],
    own: Sequence[Decision],
    params: DecisionParams,
    conv: ConversationParams,
) -> list[Decision]:
    """The route of each request's last user message, given the neighbours and vectors of every
    text `texts_needed` named and `own`, each last message's single-message decision."""
    if conv.strategy == "last_message":
        return list(own)
    layouts = [layout(turns, conv.window) for turns in requests]
    names = sorted({n.route for hits in neighbours.values() for n in hits})
    batch = ConversationBatch.build(
        layouts,
        neighbours,
        vectors,
        [(None if d.fallback else d.route, d.score) for d in own],
        names,
        params.k,
        [content_words(lay.last.text) for lay in layouts],
    )
    outcome = decide(batch, threshold=params.threshold, **conv.tunable_values())
    return [_decision(i, batch, outcome, own[i], params) for i in range(len(own))]


def route_conversation(
    turns: Sequence[Turn],
    neighbours: Mapping[str, Sequence[Neighbour]],
    vectors: Mapping[str, Vector],
    params: DecisionParams,
    conv: ConversationParams,
) -> Decision:
    """One request: the route of the last user message of `turns` (see `route_conversations`)."""
    own = decide_one(neighbours[last_user_text(turns)], params)
    return route_conversations([turns], neighbours, vectors, [own], params, conv)[0]


def _decision(i: int, batch: ConversationBatch, outcome: Outcome, own: Decision, params: DecisionParams) -> Decision:
    reason = int(outcome.reason[i])
    if reason == OWN:
        return own
    last_index = int(batch.index[i][batch.last[i]][0])
    if reason in (GATE, STANDALONE, OFF_TOPIC):
        return replace(own, reason=_REASONS[reason], turns=(TurnShare(last_index, 1.0),))
    if reason == NO_EVIDENCE:
        return replace(own, route=params.default_route, fallback=True, reason="below_threshold", ranking=())
    route = batch.route_names[int(outcome.route[i])]
    best = float(outcome.totals[i].max())
    shares = sorted(
        (
            (int(batch.index[i, m]), float(outcome.contributions[i, m]) / best)
            for m in range(batch.valid.shape[1])
            if batch.valid[i, m] and outcome.contributions[i, m] / best >= MIN_SHARE
        ),
        key=lambda x: (-x[1], x[0]),
    )
    order = np.argsort(-outcome.totals[i], kind="stable")
    return replace(
        own,
        route=route,
        fallback=False,
        reason=_REASONS[reason],
        lead=float(outcome.lead[i]),
        ranking=tuple(batch.route_names[j] for j in order if outcome.totals[i, j] > 0),
        turns=tuple(TurnShare(index, round(share, 3)) for index, share in shares),
    )
