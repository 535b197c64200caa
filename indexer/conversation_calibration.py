"""Calibrate the conversation rule (`_router.yaml: conversation:`) on labelled conversations.

Objective: the mean of the four turn-type accuracies (all turns, first turns of a domain,
follow-ups, switches), so that neither carrying routes (follow-ups) nor noticing new topics
(switches) is traded away for the other. With off-topic queries (`off_topic`: each inserted
in place of a later user turn of a conversation), a setting must also send at least
`min_off_topic` of them to the default route (by default as many as the same queries sent
alone go there, plus one standard error of that share: a setting that only ties with the
queries alone on a sample of a few hundred fell short on CLINC150 test's 1,000, harder ones;
no higher than the most any setting sends); without them the parameters of the standalone
step are not searched (what cannot be measured is not tuned) and keep their values. When no
setting reaches the bar, those sending the most are the candidates.

The file's follow-ups and replies (indexer.follow_up_bank, indexer.reply_bank) are learnt with
the setting and written beside it (`_follow_ups.yaml`, `_replies.yaml`); while searching, each
turn meets only the follow-ups and replies of the other conversations, as a conversation the
route set never saw does.

Every setting of the grid declared with the parameters (router_core.conversation; a parameter
declared with one value is not searched) is scored by the conversation engine itself
(router_core.conversation_engine), the one the service runs: each setting of the engine's
first stage once (the parameters declared `after_vote` only change its cheap second stage),
every turn's outcome kept as one row of a boolean matrix, so that any subset of the turns is
scored with a few array operations.

Against overfitting, two things. The choice follows the one-standard-error rule: the best
setting's objective is noisy, so any setting within one standard error of it (of the paired,
turn-by-turn difference) is as good, and among those the search prefers the ones that lose
nothing against the last message alone on first turns of a domain and on switches, then the
one that sends the most inserted off-topic turns to the default route (the safe answer), then
the one nearest the current setting. And the figure to expect is cross-validated: the
conversations are split into `folds` parts by a hash of their id; for each part the whole
search is run on the other parts and the chosen setting is scored on the part left out. The
in-sample figure of the chosen setting flatters; the cross-validated one is what to expect on
dialogues the search never saw.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from indexer.conversations import Prepared, TurnTypeScores, score_turns
from indexer.follow_up_bank import follow_up_owners, held_out_similarity
from indexer.labelled import is_fallback_label
from indexer.off_topic_insertion import FOLDS, fold_of
from indexer.reply_bank import held_out_chances, replies_of, reply_owners
from router_core import Decision
from router_core.conversation_engine import ConversationBatch, Outcome, stage_one, stage_two
from router_core.neighbours import BoolArray, FloatArray, IntArray
from router_core.params import ConversationParams, DecisionParams, ParamSpec, specs_of
from router_core.replies import Reply

STANDALONE = ("standalone_similarity", "standalone_words", "standalone_margin", "follow_up_similarity")


@dataclass(frozen=True)
class ConversationTrial:
    """One setting and how it did."""

    conversation: ConversationParams
    scores: TurnTypeScores
    off_topic: float | None  # share of inserted off-topic queries sent to the default route


@dataclass(frozen=True)
class CrossValidated:
    """The search run on all folds but one and scored on the one left out, for every fold."""

    scores: TurnTypeScores
    off_topic: float | None
    folds: int
    chosen: tuple[ConversationParams, ...]  # the setting each fold's search chose

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **self.scores.as_row(),
            "counts": self.scores.counts,
            "off_topic": self.off_topic,
            "folds": self.folds,
            "chosen": [c.tunable_values() for c in self.chosen],
        }


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
    cross_validated: CrossValidated | None = None
    follow_ups: tuple[str, ...] = ()  # learnt from the file, for `_follow_ups.yaml`
    replies: tuple[Reply, ...] = ()  # learnt from the file, for `_replies.yaml`
    off_topic_turns: int = 0  # off-topic queries inserted (the bar's sample)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""

        def trial(t: ConversationTrial) -> dict[str, Any]:
            return {"conversation": t.conversation.to_dict(), **t.scores.as_row(), "off_topic": t.off_topic}

        return {
            "chosen": trial(self.chosen),
            "current": trial(self.current),
            "last_message": trial(self.last_message),
            "cross_validated": self.cross_validated.to_dict() if self.cross_validated else None,
            "searched": list(self.searched),
            "settings": self.settings,
            "feasible": self.feasible,
            "min_off_topic": self.min_off_topic,
            "top": [trial(t) for t in self.top],
            "follow_ups": len(self.follow_ups),
            "replies": len(self.replies),
            "off_topic_turns": self.off_topic_turns,
        }


class _Outcomes:
    """The engine's decisions on one prepared file, per setting; the first stage is cached for
    the settings that share it (the parameters not declared `after_vote`)."""

    def __init__(
        self,
        prepared: Prepared,
        params: DecisionParams,
        route_names: Sequence[str],
        follow_up: FloatArray | None = None,
    ) -> None:
        self.batch: ConversationBatch = prepared.batch(params, route_names, follow_up)
        self.params = params
        self.cache: dict[Any, Any] = {}
        self._first: tuple[tuple[Any, ...], Outcome] | None = None
        ids = {name: i for i, name in enumerate(self.batch.route_names)}
        default = params.default_route
        labels = prepared.labels
        self.gold: IntArray = np.array(
            [-1 if is_fallback_label(g.route, default) else ids.get(g.route, -2) for g in labels], np.int64
        )
        self.first: BoolArray = np.array([g.first_of_domain for g in labels], bool)
        self.switch: BoolArray = np.array([g.switch for g in labels], bool)
        self.fold: IntArray = np.array([fold_of(g.conversation) for g in labels], np.int64)

    def routes(self, conv: ConversationParams, first_key: tuple[Any, ...]) -> IntArray:
        setting = {**conv.tunable_values(), "threshold": self.params.threshold}
        if self._first is None or self._first[0] != first_key:
            self._first = (first_key, stage_one(self.batch, self.cache, **setting))
        return stage_two(self.batch, self._first[1], self.cache, **setting).route

    def scores(self, right: BoolArray, mask: BoolArray | None = None) -> TurnTypeScores:
        """Accuracy per turn type of a per-turn right/wrong vector (over `mask`)."""
        m = np.ones(len(right), bool) if mask is None else mask
        groups = {
            "all": m,
            "first of domain": m & self.first,
            "follow-up": m & ~self.first,
            "switch": m & self.switch,
        }
        acc = [float(right[g].mean()) if g.any() else 0.0 for g in groups.values()]
        return TurnTypeScores(acc[0], acc[1], acc[2], acc[3], {name: int(g.sum()) for name, g in groups.items()})


@dataclass(frozen=True)
class _Search:
    """Every setting's per-turn outcome: `right` (settings x turns), `fallback` (settings x
    inserted off-topic turns), and what the objective needs to pick among them."""

    settings: tuple[ConversationParams, ...]
    right: BoolArray
    fallback: BoolArray | None
    outcomes: _Outcomes
    off_fold: IntArray | None
    alone: BoolArray  # (turns,) the last message alone right

    def no_loss(self, rows: BoolArray) -> BoolArray:
        """Per setting: at least as accurate as the last message alone on first turns of a
        domain and on switches (over `rows`), the turns where the history can only mislead."""
        o = self.outcomes
        out = np.ones(len(self.settings), bool)
        for g in (rows & o.first, rows & o.switch):
            if g.any():
                out &= self.right[:, g].sum(axis=1) >= self.alone[g].sum()
        return out

    def groups(self, rows: BoolArray) -> list[BoolArray]:
        """The turns of each turn type among `rows`: all, first of a domain, follow-ups, switches."""
        o = self.outcomes
        return [rows, rows & o.first, rows & ~o.first, rows & o.switch]

    def objective(self, rows: BoolArray) -> FloatArray:
        """Per setting: the mean of the four turn-type accuracies over `rows`."""
        total: FloatArray = np.zeros(len(self.settings))
        for g in self.groups(rows):
            if g.any():
                total += self.right[:, g].mean(axis=1)
        return total / 4

    def off_topic(self, off_rows: BoolArray | None) -> FloatArray | None:
        """Per setting: the share of the inserted off-topic turns in `off_rows` that fell back."""
        if self.fallback is None or off_rows is None or not off_rows.any():
            return None
        share: FloatArray = self.fallback[:, off_rows].mean(axis=1)
        return share

    def ranked(self, rows: BoolArray, off_rows: BoolArray | None, min_off_topic: float) -> tuple[IntArray, int]:
        """Setting indices, best first (feasible ones first), and how many are feasible."""
        objective = np.round(self.objective(rows), 9)
        off = self.off_topic(off_rows)
        feasible = np.ones(len(self.settings), bool) if off is None else off >= min_off_topic - 1e-12
        off_key = np.zeros(len(self.settings)) if off is None else off
        if not feasible.any():  # none reaches the bar: the safest are the candidates
            feasible = off_key >= off_key.max() - 1e-12
            order = np.lexsort((-off_key, -objective, ~feasible))
            return order, 0
        order = np.lexsort((-off_key, -objective, ~feasible))
        return order, int(feasible.sum())

    def pick(self, rows: BoolArray, off_rows: BoolArray | None, min_off_topic: float, distance: IntArray) -> int:
        """The one-standard-error rule: among the settings whose objective is within one
        standard error (of its paired difference, turn by turn) of the best feasible one, the
        one sending the most off-topic turns to the default route, then the nearest to the
        current setting (`distance`: parameters changed), then the best. A setting is only left
        for another when the gain is larger than the noise."""
        order, feasible = self.ranked(rows, off_rows, min_off_topic)
        best = int(order[0])
        off = self.off_topic(off_rows)
        if off is None:
            allowed = np.ones(len(self.settings), bool)
        elif feasible:
            allowed = off >= min_off_topic - 1e-12
        else:  # none reaches the bar: only the settings sending the most off-topic turns
            allowed = off >= off.max() - 1e-12
        weight = np.zeros(len(rows))
        for g in self.groups(rows):
            if g.any():
                weight[g] += 1 / (4 * g.sum())
        cols = np.flatnonzero(rows)
        differs = self.right[:, cols] != self.right[best, cols]
        se = np.sqrt(differs.astype(np.float64) @ (weight[cols] ** 2))
        objective = self.objective(rows)
        near = allowed & (objective >= objective[best] - se - 1e-12)
        if (near & self.no_loss(rows)).any():
            near &= self.no_loss(rows)
        candidates = np.flatnonzero(near)
        # among settings as good on the turns, the one that keeps the most off-topic turns out
        # (the default route is the safe answer), then the nearest to the current setting
        off_key = -off[candidates] if off is not None else np.zeros(len(candidates))
        key = np.lexsort((-objective[candidates], distance[candidates], np.round(off_key, 9)))
        return int(candidates[key[0]])


def _grids(
    specs: Sequence[ParamSpec], current: ConversationParams, overrides: Mapping[str, tuple[Any, ...]]
) -> list[tuple[ParamSpec, tuple[Any, ...]]]:
    """The values searched per parameter: the override, else the declared grid; a parameter with
    one value in its grid is not searched and keeps its current value."""
    out = []
    for spec in specs:
        values = tuple(overrides.get(spec.name, spec.grid))
        out.append((spec, values if len(values) > 1 else (getattr(current, spec.name),)))
    return out


def _settings(
    base: ConversationParams, grids: Sequence[tuple[ParamSpec, tuple[Any, ...]]]
) -> Iterator[tuple[tuple[Any, ...], ConversationParams]]:
    """Every setting with the key of its first stage; settings sharing a first stage follow one
    another (the first stage is the expensive part)."""
    first = [(s, v) for s, v in grids if not s.after_vote]
    second = [(s, v) for s, v in grids if s.after_vote]
    for a in itertools.product(*(v for _, v in first)):
        for b in itertools.product(*(v for _, v in second)):
            values = {s.name: x for (s, _), x in zip(first, a, strict=True)}
            values.update({s.name: x for (s, _), x in zip(second, b, strict=True)})
            yield a, replace(base, **values)


def _search(
    prepared: Prepared,
    off_topic: Prepared | None,
    params: DecisionParams,
    route_names: Sequence[str],
    grids: Sequence[tuple[ParamSpec, tuple[Any, ...]]],
    base: ConversationParams,
    follow_up: FloatArray | None,
    off_follow_up: FloatArray | None,
) -> _Search:
    outcomes = _Outcomes(prepared, params, route_names, follow_up)
    off = _Outcomes(off_topic, params, route_names, off_follow_up) if off_topic is not None else None
    settings: list[ConversationParams] = []
    right: list[BoolArray] = []
    fallback: list[BoolArray] = []
    for key, conv in _settings(base, grids):
        settings.append(conv)
        right.append(outcomes.routes(conv, key) == outcomes.gold)
        if off is not None:
            fallback.append(off.routes(conv, key) < 0)
    return _Search(
        tuple(settings),
        np.array(right, bool),
        np.array(fallback, bool) if off is not None else None,
        outcomes,
        off.fold if off is not None else None,
        outcomes.gold == np.array([_id(d, outcomes) for d in prepared.own], np.int64),
    )


def _id(decision: Decision, outcomes: _Outcomes) -> int:
    """A decision's route id in the batch (-1: the default route)."""
    if decision.fallback:
        return -1
    names = outcomes.batch.route_names
    return names.index(decision.route) if decision.route in names else -3


def calibrate_conversations(
    prepared: Prepared,
    params: DecisionParams,
    route_names: Sequence[str],
    current: ConversationParams,
    *,
    off_topic: Prepared | None = None,
    min_off_topic: float | None = None,
    values: Mapping[str, tuple[Any, ...]] | None = None,
    top: int = 10,
    folds: int = FOLDS,
    learn_follow_ups: bool = True,
    max_follow_up_bytes: int | None = None,
    learn_replies: bool = True,
) -> ConversationCalibration:
    """Search the conversation parameters (see the module docstring) and estimate, by
    `folds`-fold cross-validation, how the search does on conversations it did not see
    (`folds` < 2: no estimate). `prepared` (and `off_topic`) must have been prepared with the
    grid's largest window and its contexts. `min_off_topic` None: as many as alone.
    `learn_follow_ups` (with `off_topic`): the file's follow-ups are learnt (each turn scored
    against those of the other conversations), as many as `_follow_ups.yaml` holds in
    `max_follow_up_bytes` (None: the default file limit); otherwise the index's, if any, are
    used as served. `learn_replies`: the same for the file's replies (indexer.reply_bank),
    learnt with or without off-topic turns (they change the filter, not the standalone step)."""
    # like the standalone step they serve, follow-ups are learnt only where off-topic turns measure them
    limit = {} if max_follow_up_bytes is None else {"max_bytes": max_follow_up_bytes}
    replied = reply_owners(prepared, params, **limit) if learn_replies else {}
    if replied:  # each turn meets the replies of the other conversations only
        prepared = replace(prepared, reply_chance=held_out_chances(prepared, prepared, replied))
        if off_topic is not None:
            off_topic = replace(off_topic, reply_chance=held_out_chances(off_topic, prepared, replied))
    owners = follow_up_owners(prepared, params, **limit) if learn_follow_ups and off_topic is not None else {}
    follow_up = held_out_similarity(prepared, prepared, owners) if owners else None
    off_follow_up = held_out_similarity(off_topic, prepared, owners) if owners and off_topic is not None else None
    has_follow_ups = bool(owners) or (not learn_follow_ups and bool(prepared.follow_up))
    specs = [
        s
        for s in specs_of(ConversationParams)
        if (off_topic is not None or s.name not in STANDALONE) and (has_follow_ups or s.name != "follow_up_similarity")
    ]
    grids = _grids(specs, current, dict(values or {}))
    searched = tuple(s.name for s, v in grids if len(v) > 1)
    base = replace(current, strategy="evidence")
    search = _search(prepared, off_topic, params, route_names, grids, base, follow_up, off_follow_up)
    if min_off_topic is None:
        min_off_topic = 0.0
        if off_topic is not None and off_topic.own:
            shares = search.off_topic(np.ones(len(off_topic.own), bool))
            alone = float(np.mean([d.fallback for d in off_topic.own]))
            most = float(shares.max()) if shares is not None else alone
            min_off_topic = off_topic_bar(alone, len(off_topic.own), most)
    o = search.outcomes
    every = np.ones(len(o.gold), bool)
    off_every = np.ones(search.fallback.shape[1], bool) if search.fallback is not None else None
    order, feasible = search.ranked(every, off_every, min_off_topic)
    distance = np.array(
        [sum(getattr(c, name) != getattr(base, name) for name in searched) for c in search.settings], np.int64
    )
    off_share = search.off_topic(off_every)

    def trial_at(i: int) -> ConversationTrial:
        return ConversationTrial(
            search.settings[i], o.scores(search.right[i]), float(off_share[i]) if off_share is not None else None
        )

    chosen = trial_at(search.pick(every, off_every, min_off_topic, distance))
    last = ConversationTrial(
        replace(current, strategy="last_message"),
        score_turns([d.route for d in prepared.own], prepared.labels, params.default_route),
        float(np.mean([d.fallback for d in off_topic.own])) if off_topic is not None and off_topic.own else None,
    )
    return ConversationCalibration(
        chosen=chosen,
        current=_trial(current, prepared, off_topic, params, route_names, follow_up, off_follow_up)
        if current.strategy == "evidence"
        else last,
        last_message=last,
        searched=searched,
        settings=len(search.settings),
        feasible=feasible,
        min_off_topic=min_off_topic if off_topic is not None else None,
        top=tuple(trial_at(int(i)) for i in order[:top]),
        cross_validated=_cross_validate(search, min_off_topic, folds, distance) if folds >= 2 else None,
        follow_ups=tuple(owners),
        replies=replies_of(replied),
        off_topic_turns=len(off_topic.own) if off_topic is not None else 0,
    )


def off_topic_bar(alone: float, queries: int, most: float) -> float:
    """The default bar: `alone`, the share of the `queries` off-topic queries that fall back when
    sent alone, plus one standard error of it (binomial), no higher than the `most` a setting
    sends, and never under the share alone."""
    margin = math.sqrt(max(alone * (1 - alone), 1 / queries) / queries)
    return max(alone, min(alone + margin, most))


def _cross_validate(search: _Search, min_off_topic: float, folds: int, distance: IntArray) -> CrossValidated:
    o = search.outcomes
    fold = o.fold % folds
    off_fold = search.off_fold % folds if search.off_fold is not None else None
    right = np.zeros(len(o.gold), bool)
    fell_back = np.zeros(len(off_fold), bool) if off_fold is not None else None
    chosen = []
    for f in range(folds):
        train = fold != f
        off_train = off_fold != f if off_fold is not None else None
        i = search.pick(train, off_train, min_off_topic, distance)
        chosen.append(search.settings[i])
        right[~train] = search.right[i, ~train]
        if fell_back is not None and search.fallback is not None and off_fold is not None:
            fell_back[off_fold == f] = search.fallback[i, off_fold == f]
    return CrossValidated(
        o.scores(right),
        float(fell_back.mean()) if fell_back is not None and len(fell_back) else None,
        folds,
        tuple(chosen),
    )


def _trial(
    conv: ConversationParams,
    prepared: Prepared,
    off_topic: Prepared | None,
    params: DecisionParams,
    route_names: Sequence[str],
    follow_up: FloatArray | None,
    off_follow_up: FloatArray | None,
) -> ConversationTrial:
    """One setting scored on the file (and the inserted off-topic turns)."""
    outcomes = _Outcomes(prepared, params, route_names, follow_up)
    right = outcomes.routes(conv, ()) == outcomes.gold
    off = None
    if off_topic is not None:
        off = float(np.mean(_Outcomes(off_topic, params, route_names, off_follow_up).routes(conv, ()) < 0))
    return ConversationTrial(conv, outcomes.scores(right), off)
