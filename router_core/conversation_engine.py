"""The conversation rule, vectorised: the one implementation (see router_core.conversation).

For T requests at once (the service's micro-batch, or calibration's settings over a labelled
conversations file): each request's window messages are laid out as padded (T, M) arrays with
their k nearest examples, so a setting of the conversation parameters is scored with a few
array operations. `ConversationBatch.build` reads the messages; `decide` applies one setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from router_core.neighbours import BoolArray, FloatArray, IntArray, Neighbour, ordered

Vector = npt.NDArray[np.float32]

# Reason codes of `decide`.
OWN, GATE, STANDALONE, OFF_TOPIC, CONTEXT, CONTINUED, NO_EVIDENCE = range(7)
CONTEXT_MESSAGES = 2  # a user message's context text: this many messages before it, then itself
CONTEXT_TAIL_CHARS = 300  # of each earlier message in a context text: its end, nearest the user's reply


@dataclass(frozen=True)
class Message:
    """One user or assistant message of a request."""

    index: int  # position in the request's messages
    role: str
    text: str


def context_text(messages: Sequence[Message], j: int) -> str:
    """The messages before message j and j itself; a long earlier message (an agent's answer)
    contributes its end, so the model's token limit never cuts the user's own words off."""
    before = [m.text[-CONTEXT_TAIL_CHARS:] for m in messages[max(0, j - CONTEXT_MESSAGES) : j]]
    return " ".join([*before, messages[j].text])


@dataclass(frozen=True)
class Layout:
    """Which messages of one request the rule may read, within `max_window` user messages."""

    messages: tuple[Message, ...]  # user and assistant messages up to the last user message
    read: tuple[int, ...]  # positions in `messages` of those within the window, oldest first
    ranks: tuple[int, ...]  # per read message: the smallest window (in user messages) that includes it
    users: int  # user messages in the whole request

    @classmethod
    def of(cls, messages: Sequence[Message], max_window: int) -> Layout:
        users_at = [j for j, m in enumerate(messages) if m.role == "user"]
        if not users_at:
            raise ValueError("a conversation needs a user message")
        upto = tuple(messages[: users_at[-1] + 1])
        read, ranks = [], []
        later = 0  # user messages at or after position j
        for j in range(len(upto) - 1, -1, -1):
            if upto[j].role == "user":
                later += 1
            rank = later if upto[j].role == "user" else later + 1
            if rank <= max_window:
                read.append(j)
                ranks.append(rank)
        return cls(upto, tuple(reversed(read)), tuple(reversed(ranks)), len(users_at))

    @property
    def last(self) -> Message:
        return self.messages[-1]

    def texts(self, with_context: bool) -> list[str]:
        """Every text the rule may need: each read message, and the users' context texts."""
        out = [self.last.text, *(self.messages[j].text for j in self.read)]
        if with_context:
            out += [context_text(self.messages, j) for j in self.read if self.messages[j].role == "user"]
        return out


@dataclass(frozen=True)
class ConversationBatch:
    """T requests' window messages as padded arrays (M messages, k neighbours each)."""

    route_names: tuple[str, ...]
    own_route: IntArray  # (T,) the last message's own decision (route id, -1 for the default route)
    own_score: FloatArray  # (T,) its best similarity
    single: BoolArray  # (T,) one user message in the request
    words: IntArray  # (T,) content words of the last message
    valid: BoolArray  # (T, M)
    user: BoolArray  # (T, M)
    last: BoolArray  # (T, M) the routed message
    rank: IntArray  # (T, M) included in windows of at least this many user messages
    age: IntArray  # (T, M) user messages after it (assistants: after it, minus one)
    index: IntArray  # (T, M) position in the request's messages
    cos_last: FloatArray  # (T, M) cosine to the routed message
    sims: FloatArray  # (T, M, K) the message's nearest examples
    routes: IntArray  # (T, M, K)
    ctx_sims: FloatArray  # (T, M, K) its context text's nearest examples (users; -inf otherwise)
    ctx_routes: IntArray  # (T, M, K)

    @classmethod
    def build(
        cls,
        layouts: Sequence[Layout],
        neighbours: Mapping[str, Sequence[Neighbour]],
        vectors: Mapping[str, Vector],
        own: Sequence[tuple[str | None, float]],
        route_names: Sequence[str],
        k: int,
        words: Sequence[int],
    ) -> ConversationBatch:
        """Arrays for `layouts`; `own` holds each last message's decided route (None: the default
        route) and best similarity; `neighbours` and `vectors` every text `Layout.texts` named
        (context texts only when a context weight may be used)."""
        names = tuple(route_names)
        ids = {name: i for i, name in enumerate(names)}
        t_count, m_count = len(layouts), max((len(lay.read) for lay in layouts), default=0)
        shape = (t_count, m_count)
        valid = np.zeros(shape, bool)
        user = np.zeros(shape, bool)
        last = np.zeros(shape, bool)
        rank = np.zeros(shape, np.int64)
        age = np.zeros(shape, np.int64)
        index = np.zeros(shape, np.int64)
        cos_last = np.full(shape, -np.inf)
        sims = np.full((*shape, k), -np.inf)
        routes = np.full((*shape, k), len(names), np.int64)
        ctx_sims = np.full((*shape, k), -np.inf)
        ctx_routes = np.full((*shape, k), len(names), np.int64)

        def put(s: FloatArray, r: IntArray, at: tuple[int, int], hits: Sequence[Neighbour]) -> None:
            for c, n in enumerate(ordered(hits)[:k]):
                s[(*at, c)] = n.similarity
                r[(*at, c)] = ids.get(n.route, len(names))

        for t, lay in enumerate(layouts):
            mine = vectors[lay.last.text]
            for m, (j, rk) in enumerate(zip(lay.read, lay.ranks, strict=True)):
                msg = lay.messages[j]
                is_user = msg.role == "user"
                valid[t, m], user[t, m], last[t, m] = True, is_user, j == len(lay.messages) - 1
                rank[t, m], index[t, m] = rk, msg.index
                age[t, m] = rk - 1 if is_user else rk - 2
                if not last[t, m]:
                    cos_last[t, m] = float(vectors[msg.text] @ mine)
                put(sims, routes, (t, m), neighbours[msg.text])
                ctx = context_text(lay.messages, j)
                if is_user and ctx in neighbours:
                    put(ctx_sims, ctx_routes, (t, m), neighbours[ctx])
        own_route = np.array([ids.get(r, -1) if r is not None else -1 for r, _ in own], np.int64)
        own_score = np.array([s for _, s in own], np.float64)
        return cls(
            route_names=names,
            own_route=own_route,
            own_score=own_score,
            single=np.array([lay.users == 1 for lay in layouts], bool),
            words=np.array(words, np.int64),
            valid=valid,
            user=user,
            last=last,
            rank=rank,
            age=age,
            index=index,
            cos_last=cos_last,
            sims=sims,
            routes=routes,
            ctx_sims=ctx_sims,
            ctx_routes=ctx_routes,
        )

    def __len__(self) -> int:
        return int(self.own_route.shape[0])

    def evidence(self, floor: float, *, context: bool) -> FloatArray:
        """(T, M, R): per message, the sum over its nearest examples of each route of
        max(0, similarity - floor); of its context text with `context`."""
        s, r = (self.ctx_sims, self.ctx_routes) if context else (self.sims, self.routes)
        gains = np.maximum(np.where(np.isfinite(s), s - floor, 0.0), 0.0)
        out = np.zeros((*s.shape[:2], len(self.route_names) + 1))
        t, m, _ = np.indices(s.shape)
        np.add.at(out, (t, m, r), gains)
        return out[..., :-1]


@dataclass(frozen=True)
class Outcome:
    """What one setting decided for every request of a batch."""

    route: IntArray  # (T,) route id, -1 for the default route
    reason: IntArray  # (T,) OWN, GATE, STANDALONE, OFF_TOPIC, CONTEXT, CONTINUED or NO_EVIDENCE
    contributions: FloatArray  # (T, M) each message's evidence for the chosen route
    totals: FloatArray  # (T, R) every route's evidence
    lead: FloatArray  # (T,) the winner's evidence lead over the runner-up, as a share


def pool(
    batch: ConversationBatch,
    *,
    threshold: float,
    window: int,
    decay: float,
    floor_below: float,
    assistant_weight: float,
    context_weight: float,
    evidence: dict[tuple[float, bool], FloatArray] | None = None,
) -> Outcome:
    """Step 4 of the rule for every request: the decayed evidence over the window and its
    winner. `evidence` caches `batch.evidence` arrays across calls (calibration)."""
    floor = threshold - floor_below

    def ev(context: bool) -> FloatArray:
        key = (round(floor, 9), context)
        if evidence is None:
            return batch.evidence(floor, context=context)
        if key not in evidence:
            evidence[key] = batch.evidence(floor, context=context)
        return evidence[key]

    inside = batch.valid & (batch.rank <= window)
    weight = np.where(batch.user, 1.0, assistant_weight) * np.power(decay, np.maximum(batch.age, 0))
    weight = np.where(inside, weight, 0.0)
    per_message = ev(False) * weight[..., None]
    if context_weight:
        per_message = per_message + ev(True) * (context_weight * np.where(batch.user, weight, 0.0))[..., None]
    totals = per_message.sum(axis=1)
    n = len(batch)
    if totals.shape[1] == 0:
        empty = np.zeros((n, per_message.shape[1]))
        return Outcome(np.full(n, -1), np.full(n, NO_EVIDENCE), empty, totals, np.full(n, np.inf))
    best = totals.max(axis=1)
    winner = np.argmax(totals, axis=1)
    runner = -np.sort(-totals, axis=1)[:, 1] if totals.shape[1] > 1 else np.zeros(n)
    total = np.maximum(totals.sum(axis=1), 1e-12)
    lead = np.where(runner > 0, (best - runner) / total, np.inf)
    own_evidence = (ev(False) * batch.last[..., None]).sum(axis=1)
    supports = np.take_along_axis(own_evidence, winner[:, None], axis=1)[:, 0] > 0
    route = np.where(best > 0, winner, -1).astype(np.int64)
    reason = np.where(best > 0, np.where(supports, CONTEXT, CONTINUED), NO_EVIDENCE).astype(np.int64)
    contributions = np.take_along_axis(per_message, winner[:, None, None], axis=2)[..., 0]
    return Outcome(route, reason, contributions, totals, lead)


def related(batch: ConversationBatch, window: int) -> FloatArray:
    """(T,) the routed message's best cosine to the earlier messages of the window (-inf: none)."""
    inside = batch.valid & (batch.rank <= window) & ~batch.last
    closeness: FloatArray = np.where(inside, batch.cos_last, -np.inf).max(axis=1, initial=-np.inf)
    return closeness


def finish(
    batch: ConversationBatch,
    pooled: Outcome,
    closeness: FloatArray,
    *,
    threshold: float,
    gate_above: float | None,
    standalone_similarity: float,
    standalone_words: int,
) -> Outcome:
    """Steps 1-3 of the rule over the pooled evidence: a one-message request, a confident last
    message (the gate) and a standalone request are decided by the last message alone."""
    routed = batch.own_route >= 0
    gate = (
        routed & (batch.own_score >= threshold + gate_above) if gate_above is not None else np.zeros(len(batch), bool)
    )
    standalone = (batch.words >= standalone_words) & (closeness < standalone_similarity)
    route = np.select([batch.single, gate, standalone], [batch.own_route] * 3, default=pooled.route)
    reason = np.select(
        [batch.single, gate, standalone & routed, standalone],
        [OWN, GATE, STANDALONE, OFF_TOPIC],
        default=pooled.reason,
    )
    return Outcome(route.astype(np.int64), reason.astype(np.int64), pooled.contributions, pooled.totals, pooled.lead)


def decide(
    batch: ConversationBatch,
    *,
    threshold: float,
    window: int,
    decay: float,
    floor_below: float,
    gate_above: float | None,
    assistant_weight: float,
    context_weight: float,
    standalone_similarity: float,
    standalone_words: int,
) -> Outcome:
    """Apply one setting of the rule (router_core.conversation) to every request of `batch`."""
    pooled = pool(
        batch,
        threshold=threshold,
        window=window,
        decay=decay,
        floor_below=floor_below,
        assistant_weight=assistant_weight,
        context_weight=context_weight,
    )
    return finish(
        batch,
        pooled,
        related(batch, window),
        threshold=threshold,
        gate_above=gate_above,
        standalone_similarity=standalone_similarity,
        standalone_words=standalone_words,
    )


def stage_one(batch: ConversationBatch, cache: dict[Any, Any], **setting: Any) -> Outcome:
    """The expensive part of `decide` (the pooled evidence), for calibration: `setting` holds
    every parameter; `cache` keeps what settings share."""
    evidence = cache.setdefault("evidence", {})
    return pool(
        batch,
        threshold=setting["threshold"],
        window=setting["window"],
        decay=setting["decay"],
        floor_below=setting["floor_below"],
        assistant_weight=setting["assistant_weight"],
        context_weight=setting["context_weight"],
        evidence=evidence,
    )


def stage_two(batch: ConversationBatch, first: Outcome, cache: dict[Any, Any], **setting: Any) -> Outcome:
    """The cheap rest of `decide` over `stage_one`'s outcome (the parameters declared `after_vote`)."""
    closeness = cache.setdefault("related", {})
    window = setting["window"]
    if window not in closeness:
        closeness[window] = related(batch, window)
    return finish(
        batch,
        first,
        closeness[window],
        threshold=setting["threshold"],
        gate_above=setting["gate_above"],
        standalone_similarity=setting["standalone_similarity"],
        standalone_words=setting["standalone_words"],
    )
