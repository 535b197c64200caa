"""Calibrate the conversation rule (`_router.yaml: conversation:`) on labelled conversations.

Objective: the mean of the four turn-type accuracies (all turns, first turns of a domain,
follow-ups, switches), so that neither carrying routes (follow-ups) nor noticing new topics
(switches) is traded away for the other. With off-topic queries (`off_topic`: each inserted
in place of a later user turn of a conversation), a setting must also send at least
`min_off_topic` of them to the default route; without them the two parameters of the
standalone rule are not searched (what cannot be measured is not tuned) and keep their values.

Every setting of the grid declared with the parameters (router_core.conversation) is scored by
the conversation engine itself (router_core.conversation_engine), the one the service runs.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from indexer.conversations import LabelledConversation, LabelledTurn, Prepared, TurnTypeScores, score_turns
from indexer.defaults import DEFAULT_MIN_OFF_TOPIC
from router_core import Turn
from router_core.conversation_engine import ConversationBatch, finish, pool, related
from router_core.neighbours import FloatArray
from router_core.params import ConversationParams, DecisionParams, specs_of

OFF_TOPIC_LABEL = "oos"
STANDALONE = ("standalone_similarity", "standalone_words")


@dataclass(frozen=True)
class ConversationTrial:
    """One setting and how it did."""

    conversation: ConversationParams
    scores: TurnTypeScores
    off_topic: float | None  # share of inserted off-topic queries sent to the default route


@dataclass(frozen=True)
class ConversationCalibration:
    """The chosen setting, the current one and the single-message baseline, and the search."""

    chosen: ConversationTrial
    current: ConversationTrial
    last_message: ConversationTrial
    searched: tuple[str, ...]
    settings: int
    feasible: int
    min_off_topic: float | None
    top: tuple[ConversationTrial, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""

        def trial(t: ConversationTrial) -> dict[str, Any]:
            return {"conversation": t.conversation.to_dict(), **t.scores.as_row(), "off_topic": t.off_topic}

        return {
            "chosen": trial(self.chosen),
            "current": trial(self.current),
            "last_message": trial(self.last_message),
            "searched": list(self.searched),
            "settings": self.settings,
            "feasible": self.feasible,
            "min_off_topic": self.min_off_topic,
            "top": [trial(t) for t in self.top],
        }


def insert_off_topic(
    conversations: Sequence[LabelledConversation], queries: Sequence[str], *, seed: int = 0
) -> list[LabelledConversation]:
    """For each off-topic query, a conversation cut before one of its later labelled user turns,
    with that turn replaced by the query (labelled to fall back). Seeded, deterministic."""
    rng = random.Random(seed)
    usable = [c for c in conversations if any(label.position > 0 for label in c.labels)]
    if not usable:
        return []
    out = []
    for n, query in enumerate(queries):
        c = usable[rng.randrange(len(usable))]
        label = rng.choice([lab for lab in c.labels if lab.position > 0])
        turns = (*c.messages[: label.position], Turn(label.position, "user", query))
        out.append(
            LabelledConversation(
                f"{c.id}+off-topic-{n}",
                turns,
                (LabelledTurn(c.id, label.position, OFF_TOPIC_LABEL, first_of_domain=False, switch=True),),
            )
        )
    return out


class _Scorer:
    """Scores settings on one prepared file, caching what settings share."""

    def __init__(self, prepared: Prepared, params: DecisionParams, route_names: Sequence[str]) -> None:
        self.batch: ConversationBatch = prepared.batch(params, route_names)
        self.labels = prepared.labels
        self.params = params
        self.names = self.batch.route_names
        self._evidence: dict[tuple[float, bool], FloatArray] = {}
        self._related: dict[int, FloatArray] = {}

    def predictions(self, conv: ConversationParams) -> list[str]:
        pooled = pool(
            self.batch,
            threshold=self.params.threshold,
            window=conv.window,
            decay=conv.decay,
            floor_below=conv.floor_below,
            assistant_weight=conv.assistant_weight,
            context_weight=conv.context_weight,
            evidence=self._evidence,
        )
        if conv.window not in self._related:
            self._related[conv.window] = related(self.batch, conv.window)
        done = finish(
            self.batch,
            pooled,
            self._related[conv.window],
            threshold=self.params.threshold,
            gate_above=conv.gate_above,
            standalone_similarity=conv.standalone_similarity,
            standalone_words=conv.standalone_words,
        )
        default = self.params.default_route
        return [default if r < 0 else self.names[r] for r in done.route.tolist()]

    def scores(self, conv: ConversationParams) -> TurnTypeScores:
        return score_turns(self.predictions(conv), self.labels, self.params.default_route)

    def fallback_share(self, conv: ConversationParams) -> float:
        predicted = self.predictions(conv)
        return float(np.mean([p == self.params.default_route for p in predicted])) if predicted else 0.0


def calibrate_conversations(
    prepared: Prepared,
    params: DecisionParams,
    route_names: Sequence[str],
    current: ConversationParams,
    *,
    off_topic: Prepared | None = None,
    min_off_topic: float = DEFAULT_MIN_OFF_TOPIC,
    values: Mapping[str, tuple[Any, ...]] | None = None,
    top: int = 10,
) -> ConversationCalibration:
    """Search the conversation parameters (see the module docstring). `prepared` (and
    `off_topic`) must have been prepared with the grid's largest window and context texts."""
    specs = specs_of(ConversationParams)
    overrides = dict(values or {})
    searched = [s for s in specs if off_topic is not None or s.name not in STANDALONE]
    grids = [tuple(overrides.get(s.name, s.grid)) for s in searched]
    scorer = _Scorer(prepared, params, route_names)
    off = _Scorer(off_topic, params, route_names) if off_topic is not None else None

    def trial(conv: ConversationParams) -> ConversationTrial:
        return ConversationTrial(conv, scorer.scores(conv), off.fallback_share(conv) if off else None)

    base = replace(current, strategy="evidence")
    trials = []
    for combo in itertools.product(*grids):
        conv = replace(base, **{s.name: v for s, v in zip(searched, combo, strict=True)})
        trials.append(trial(conv))
    feasible = [t for t in trials if t.off_topic is None or t.off_topic >= min_off_topic]
    pool_of = feasible or trials
    ranked = sorted(pool_of, key=lambda t: (-round(t.scores.macro, 9), -(t.off_topic or 0.0)))
    last_message = replace(current, strategy="last_message")
    last = ConversationTrial(
        last_message,
        score_turns([d.route for d in prepared.own], prepared.labels, params.default_route),
        float(np.mean([d.fallback for d in off_topic.own])) if off_topic is not None and off_topic.own else None,
    )
    return ConversationCalibration(
        chosen=ranked[0],
        current=trial(current) if current.strategy == "evidence" else last,
        last_message=last,
        searched=tuple(s.name for s in searched),
        settings=len(trials),
        feasible=len(feasible),
        min_off_topic=min_off_topic if off_topic is not None else None,
        top=tuple(ranked[:top]),
    )
