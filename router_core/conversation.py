"""Routing a whole conversation, statelessly: the history is in every request.

Most user turns of a chat are follow-ups with no domain words ("yes please", "for 4 people",
"and of 350?"). The rule (strategy "evidence"; chosen by measurement on the SGD and MultiWOZ
multi-turn sets, see BENCHMARKS.md), the first step that applies deciding:

1. One user message: the single-message decision, unchanged.
2. The last message is a standalone request (at least `standalone_words` content words) and
   unrelated to the conversation (its best cosine to the earlier messages of the window is
   under `standalone_similarity`), it is no follow-up the route set knows (its best cosine
   to the route set's follow-ups, `_follow_ups.yaml`, is under `follow_up_similarity`; a
   set without follow-ups skips this test), its own vote does not route it with confidence (no route,
   or a best similarity under its route's threshold + `standalone_margin`) and the
   conversation does not lead to its own vote's route either (step 3's filter followed that
   route before the message and still does after it): the default route ("off_topic"),
   unless most of its k nearest examples name its own vote's route at or above that route's
   threshold: then that route ("standalone": a request of its own, however weakly similar).
   A route is never carried across an off-topic request.
3. Otherwise a forward filter follows the topic through the window (the last `window` user
   messages and the assistant messages between them, each assistant message read by its
   end, `assistant_tail`), oldest message first: the belief over
   the routes starts even; at each user message that has evidence of its own the topic may
   change (`switch` of the belief is spread evenly over the routes; at the last message, when
   it is unrelated to the window as in step 2, the larger of `switch` and `unrelated_switch`;
   after an agent message whose chance of a new topic the route set's replies tell,
   `_replies.yaml`, at least that chance: router_core.replies); then each message
   multiplies each route's belief by exp(EVIDENCE_SCALE x evidence), where its evidence for a
   route is the sum over its k nearest examples of that route of max(0, similarity - (the
   route's threshold - `floor_below`)), weighted by `assistant_weight` for assistant
   messages, plus `context_weight` x that of its context (a user message and the three
   messages before it in the window, searched as the length-weighted mean of their vectors:
   router_core.mixing). The route with the highest belief after the last message wins:
   "vote" when only the last message gave it evidence, "context" when the last message and
   earlier ones did, "continued" when the route is carried from earlier messages alone,
   "standalone" for an unrelated request routed to its own vote's route; no evidence at all
   in the window is the default route ("below_threshold").

The history can fill in a message's missing topic but cannot outvote a clear new one without
bound: the switch chance caps how sure the filter is of the current topic, so a message with
enough evidence for another route moves it, whatever came before (a first turn of a new
domain), while a message with none leaves it where it was (a follow-up). Per-route
thresholds (a route file's `threshold`) set that route's evidence floor and its confident
bar in step 2, as they set its vote.

Pure: the caller embeds and searches the texts `texts_needed` names, searches the contexts
`contexts_needed` names (mixes of those texts' vectors, router_core.mixing) and passes their
neighbours and vectors in. Strategy "last_message" routes the last user message alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from router_core.conversation_engine import (
    NO_EVIDENCE,
    OWN,
    ConversationBatch,
    Layout,
    Message,
    Outcome,
    assistant_tail,
    decide,
)
from router_core.conversation_words import IGNORED_WORDS
from router_core.decision import Decision, TurnShare
from router_core.decision import decide as decide_one
from router_core.mixing import Mix
from router_core.neighbours import Neighbour
from router_core.params import ConversationParams, DecisionParams
from router_core.reasons import OFF_TOPIC, REASONS

Role = Literal["system", "user", "assistant"]
Vector = npt.NDArray[np.float32]
_WORD = re.compile(r"[a-z0-9']+")
MIN_SHARE = 0.1  # turns listed in a decision carry at least this share of the winner's evidence


@dataclass(frozen=True)
class Turn:
    """One message of a request: its position in the request's messages, role and text."""

    index: int
    role: Role
    text: str


def content_words(text: str, ignored: frozenset[str] = IGNORED_WORDS) -> int:
    """Words that say what a message is about: not function words, not generic dialogue
    words (politeness, confirmation, dates, prices), not numbers (`ignored`: the words left
    out, by default the English list of router_core.conversation_words)."""
    return sum(1 for w in _WORD.findall(text.lower()) if w not in ignored and not w.isdigit())


def layout(turns: Sequence[Turn], window: int) -> Layout:
    """The user and assistant messages of a request the rule may read (an assistant message:
    its end, `assistant_tail`)."""
    messages = [
        Message(t.index, t.role, assistant_tail(t.text) if t.role == "assistant" else t.text)
        for t in turns
        if t.role in ("user", "assistant")
    ]
    return Layout.of(messages, window)


def without_default_exchanges(turns: Sequence[Turn], reply: str | None) -> tuple[Turn, ...]:
    """`turns` without the exchanges the default agent answered: an assistant message that is
    the route set's canned default reply (`reply`; None: an agent whose replies cannot be told)
    and the user messages it answered (those since the previous assistant message) are not the
    conversation's topic. Only exchanges before the routed (last) user message are dropped."""
    routed = next((i for i in range(len(turns) - 1, -1, -1) if turns[i].role == "user"), None)
    if reply is None or routed is None:
        return tuple(turns)
    wanted = " ".join(reply.split())
    dropped: set[int] = set()
    start = 0  # the first message after the previous assistant message
    for i, t in enumerate(turns[:routed]):
        if t.role != "assistant":
            continue
        # a text shorter than the reply cannot be it: most answers are never normalised
        if len(t.text) >= len(wanted) and " ".join(t.text.split()) == wanted:
            dropped.add(i)
            dropped.update(j for j in range(start, i) if turns[j].role == "user")
        start = i + 1
    return tuple(t for i, t in enumerate(turns) if i not in dropped) if dropped else tuple(turns)


def last_user_text(turns: Sequence[Turn]) -> str:
    """The text of the last user message."""
    return next(t.text for t in reversed(turns) if t.role == "user")


def texts_needed(turns: Sequence[Turn], conv: ConversationParams) -> tuple[str, ...]:
    """Every text whose neighbours (and vector) `route_conversations` may read, last message
    first: the messages of the window, each embedded once."""
    if conv.strategy == "last_message":
        return (last_user_text(turns),)
    return tuple(dict.fromkeys(layout(turns, conv.window).texts()))


def agent_texts_needed(turns: Sequence[Turn], conv: ConversationParams) -> tuple[str, ...]:
    """The agent messages of the window, as `texts_needed` names them: those whose chance of a
    new topic after them (router_core.replies) `route_conversations` may read."""
    if conv.strategy == "last_message":
        return ()
    lay = layout(turns, conv.window)
    return tuple(dict.fromkeys(lay.messages[j].text for j in lay.read if lay.messages[j].role == "assistant"))


def contexts_needed(turns: Sequence[Turn], conv: ConversationParams) -> tuple[Mix, ...]:
    """The contexts whose neighbours `route_conversations` may read: mixes of the vectors of
    texts `texts_needed` names (none without a context weight)."""
    if conv.strategy == "last_message" or not conv.context_weight:
        return ()
    return tuple(dict.fromkeys(layout(turns, conv.window).contexts()))


def route_conversations(
    requests: Sequence[Sequence[Turn]],
    neighbours: Mapping[str, Sequence[Neighbour]],
    vectors: Mapping[str, Vector],
    own: Sequence[Decision],
    params: DecisionParams,
    conv: ConversationParams,
    mixed: Mapping[Mix, Sequence[Neighbour]] | None = None,
    route_names: Sequence[str] | None = None,
    follow_up: Mapping[str, float] | None = None,
    reply_chance: Mapping[str, float] | None = None,
) -> list[Decision]:
    """The route of each request's last user message, given the neighbours and vectors of every
    text `texts_needed` named, the neighbours of every context `contexts_needed` named
    (`mixed`), and `own`, each last message's single-message decision.

    `route_names`: every route of the route set, the routes the filter's belief is spread over
    (its even start and each switch). They must not depend on the batch: were they the routes
    among this batch's neighbours, a conversation could be routed differently alone and in a
    micro-batch with others. None: the routes among the neighbours (a lone request, as in the
    rule's unit tests).

    `follow_up`: each routed message's best cosine to the route set's follow-ups, by text
    (None or a text left out: the set has none). `reply_chance`: each agent message's chance
    that the user's next message opens a new topic, from the route set's replies, by text
    (router_core.replies; None or a text left out: not known)."""
    if conv.strategy == "last_message":
        return list(own)
    layouts = [layout(turns, conv.window) for turns in requests]
    if route_names is None:
        names = sorted({n.route for hits in neighbours.values() for n in hits})
    else:
        names = list(route_names)
    batch = ConversationBatch.build(
        layouts,
        neighbours,
        vectors,
        [(None if d.fallback else d.route, d.score) for d in own],
        names,
        params.k,
        [content_words(lay.last.text) for lay in layouts],
        [params.threshold_for(name) for name in names],
        mixed,
        None if follow_up is None else [follow_up.get(lay.last.text, -np.inf) for lay in layouts],
        None if reply_chance is None else [reply_chance] * len(layouts),
    )
    outcome = decide(batch, **conv.tunable_values())
    return [_decision(i, batch, outcome, own[i], params) for i in range(len(own))]


def route_conversation(
    turns: Sequence[Turn],
    neighbours: Mapping[str, Sequence[Neighbour]],
    vectors: Mapping[str, Vector],
    params: DecisionParams,
    conv: ConversationParams,
    mixed: Mapping[Mix, Sequence[Neighbour]] | None = None,
    follow_up: Mapping[str, float] | None = None,
    reply_chance: Mapping[str, float] | None = None,
) -> Decision:
    """One request: the route of the last user message of `turns` (see `route_conversations`)."""
    own = decide_one(neighbours[last_user_text(turns)], params)
    return route_conversations(
        [turns], neighbours, vectors, [own], params, conv, mixed, follow_up=follow_up, reply_chance=reply_chance
    )[0]


def _decision(i: int, batch: ConversationBatch, outcome: Outcome, own: Decision, params: DecisionParams) -> Decision:
    reason = int(outcome.reason[i])
    if reason == OWN:
        return own
    last_index = int(batch.index[i][batch.last[i]][0])
    if reason in (OFF_TOPIC, NO_EVIDENCE):
        return replace(
            own,
            route=params.default_route,
            fallback=True,
            reason=REASONS[reason],
            ranking=(),
            turns=(TurnShare(last_index, 1.0),) if reason == OFF_TOPIC else (),
        )
    route = int(outcome.route[i])
    best = float(outcome.contributions[i].sum())
    shares = sorted(
        (
            (int(batch.index[i, m]), float(outcome.contributions[i, m]) / best)
            for m in range(batch.valid.shape[1])
            if batch.valid[i, m] and best > 0 and outcome.contributions[i, m] / best >= MIN_SHARE
        ),
        key=lambda x: (-x[1], x[0]),
    )
    order = np.argsort(-outcome.belief[i], kind="stable")
    return replace(
        own,
        route=batch.route_names[route],
        fallback=False,
        reason=REASONS[reason],
        lead=float(outcome.lead[i]),
        ranking=tuple(batch.route_names[j] for j in order if outcome.support[i, j] > 0),
        turns=tuple(TurnShare(index, round(share, 3)) for index, share in shares),
    )
