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

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from router_core.conversation_words import DIALOGUE_WORDS, FUNCTION_WORDS
from router_core.decision import Decision, TurnShare, decide
from router_core.neighbours import Neighbour
from router_core.params import DecisionParams, tunable

Role = Literal["system", "user", "assistant"]
Strategy = Literal["evidence", "last_message"]
Vector = npt.NDArray[np.float32]
_WORD = re.compile(r"[a-z0-9']+")
_IGNORED = FUNCTION_WORDS | DIALOGUE_WORDS
MIN_SHARE = 0.1  # turns listed in a decision carry at least this share of the winner's evidence
CONTEXT_MESSAGES = 2  # a user message's context text: this many messages before it, then itself
CONTEXT_TAIL_CHARS = 300  # of each earlier message in a context text: its end, nearest the user's reply


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
    )
    standalone_words: int = tunable(
        2, "content words a message needs to count as a standalone request", grid=(1, 2, 3), ge=1, le=20
    )

    def to_dict(self) -> dict[str, object]:
        """JSON form (stored in every index version)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def content_words(text: str) -> int:
    """Words that say what a message is about: not function words, not generic dialogue
    words (politeness, confirmation, dates, prices), not numbers."""
    return sum(1 for w in _WORD.findall(text.lower()) if w not in _IGNORED and not w.isdigit())


@dataclass(frozen=True)
class _Window:
    """The part of a conversation the rule reads."""

    messages: tuple[Turn, ...]  # user and assistant messages, in order
    users: tuple[int, ...]  # positions in `messages` of the window's user messages
    last: int  # position of the last user message

    @classmethod
    def of(cls, turns: Sequence[Turn], window: int) -> _Window:
        messages = tuple(t for t in turns if t.role in ("user", "assistant"))
        users = [j for j, t in enumerate(messages) if t.role == "user"]
        if not users:
            raise ValueError("a conversation needs a user message")
        return cls(messages, tuple(users[-window:]), users[-1])

    @property
    def single(self) -> bool:
        return len(self.users) == 1 and not any(t.role == "user" for t in self.messages[: self.users[0]])

    def context_text(self, j: int) -> str:
        """The messages before message j and j itself; a long earlier message (an agent's answer)
        contributes its end, so the model's token limit never cuts the user's own words off."""
        before = [t.text[-CONTEXT_TAIL_CHARS:] for t in self.messages[max(0, j - CONTEXT_MESSAGES) : j]]
        return " ".join([*before, self.messages[j].text])

    def earlier(self) -> tuple[Turn, ...]:
        """Every message of the window before the last user message."""
        return self.messages[self.users[0] : self.last]

    def assistants(self) -> tuple[int, ...]:
        return tuple(j for j in range(self.users[0] + 1, self.last) if self.messages[j].role == "assistant")


def last_user_text(turns: Sequence[Turn]) -> str:
    """The text of the last user message."""
    return next(t.text for t in reversed(turns) if t.role == "user")


def texts_needed(turns: Sequence[Turn], conv: ConversationParams) -> tuple[str, ...]:
    """Every text whose neighbours (and vector) `route_conversation` may read, last message first."""
    if conv.strategy == "last_message":
        return (last_user_text(turns),)
    win = _Window.of(turns, conv.window)
    texts = [win.messages[win.last].text]
    if not win.single:
        texts += [t.text for t in win.earlier()]
        texts += [win.messages[j].text for j in win.users]
        if conv.context_weight:
            texts += [win.context_text(j) for j in win.users]
    return tuple(dict.fromkeys(texts))


def route_conversation(
    turns: Sequence[Turn],
    neighbours: Mapping[str, Sequence[Neighbour]],
    vectors: Mapping[str, Vector],
    params: DecisionParams,
    conv: ConversationParams,
    *,
    own: Decision | None = None,
) -> Decision:
    """The route of the last user message of `turns`, given the neighbours and vectors of every
    text `texts_needed` named (and `own`, the last message's single-message decision, when the
    caller already has it)."""
    last_text = last_user_text(turns)
    if own is None:
        own = decide(neighbours[last_text], params)
    if conv.strategy == "last_message":
        return own
    win = _Window.of(turns, conv.window)
    last_index = win.messages[win.last].index
    alone = replace(own, turns=(TurnShare(last_index, 1.0),))
    if win.single:
        return own
    gate = None if conv.gate_above is None else params.threshold + conv.gate_above
    if gate is not None and not own.fallback and own.score >= gate:
        return alone
    if content_words(last_text) >= conv.standalone_words:
        mine = vectors[last_text]
        related = max((float(vectors[t.text] @ mine) for t in win.earlier()), default=-1.0)
        if related < conv.standalone_similarity:
            return replace(alone, reason="off_topic" if own.fallback else "standalone")
    return _by_evidence(win, neighbours, params, conv, own)


def _by_evidence(
    win: _Window,
    neighbours: Mapping[str, Sequence[Neighbour]],
    params: DecisionParams,
    conv: ConversationParams,
    own: Decision,
) -> Decision:
    floor = params.threshold - conv.floor_below

    def evidence(text: str) -> dict[str, float]:
        found: dict[str, float] = {}
        for n in sorted(neighbours[text], key=lambda n: (-n.similarity, n.route, n.text))[: params.k]:
            gain = n.similarity - floor
            if gain > 0:
                found[n.route] = found.get(n.route, 0.0) + gain
        return found

    contributions: dict[int, dict[str, float]] = {}

    def add(index: int, weight: float, found: Mapping[str, float]) -> None:
        mine = contributions.setdefault(index, {})
        for route, value in found.items():
            mine[route] = mine.get(route, 0.0) + weight * value

    for age, j in enumerate(reversed(win.users)):
        index = win.messages[j].index
        add(index, conv.decay**age, evidence(win.messages[j].text))
        if conv.context_weight:
            add(index, conv.context_weight * conv.decay**age, evidence(win.context_text(j)))
    if conv.assistant_weight:
        for j in win.assistants():
            age = sum(1 for u in win.users if u > j) - 1
            add(win.messages[j].index, conv.assistant_weight * conv.decay**age, evidence(win.messages[j].text))
    totals: dict[str, float] = {}
    for found in contributions.values():
        for route, value in found.items():
            totals[route] = totals.get(route, 0.0) + value
    ranked = sorted(((v, r) for r, v in totals.items() if v > 0), key=lambda x: (-x[0], x[1]))
    if not ranked:
        return replace(own, route=params.default_route, fallback=True, reason="below_threshold", ranking=())
    best, route = ranked[0]
    total = sum(v for v, _ in ranked)
    lead = (best - ranked[1][0]) / total if len(ranked) > 1 else math.inf
    shares = sorted(
        (
            (index, found[route] / best)
            for index, found in contributions.items()
            if found.get(route, 0.0) / best >= MIN_SHARE
        ),
        key=lambda x: (-x[1], x[0]),
    )
    last_supports = evidence(win.messages[win.last].text).get(route, 0.0) > 0
    return replace(
        own,
        route=route,
        fallback=False,
        reason="context" if last_supports else "continued",
        lead=lead,
        ranking=tuple(r for _, r in ranked),
        turns=tuple(TurnShare(index, round(share, 3)) for index, share in shares),
    )
