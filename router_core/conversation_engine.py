"""The conversation rule, vectorised: the one implementation (see router_core.conversation).

For T requests at once (the service's micro-batch, or calibration's settings over a labelled
conversations file): each request's window messages are laid out as padded (T, M) arrays with
their k nearest examples, so a setting of the conversation parameters is scored with a few
array operations per message position. `ConversationBatch.build` reads the messages; `track`
follows the topic through the window (a forward filter: the belief over routes is carried
from message to message, may switch at each user message, and is updated by each message's
evidence); `finish` applies the steps decided by the last message alone; `decide` is both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from router_core.constants import ASSISTANT_TAIL_CHARS, CONTEXT_MESSAGES, CONTEXT_WEIGHT_CHARS, EVIDENCE_SCALE
from router_core.mixing import Mix
from router_core.neighbours import BoolArray, FloatArray, IntArray, Neighbour, ordered
from router_core.reasons import BELOW_THRESHOLD, CONTEXT, CONTINUED, OFF_TOPIC, STANDALONE, VOTE

Vector = npt.NDArray[np.float32]

# Reason codes of `decide`.
# What `decide` decided, in the codes of router_core.reasons; OWN: the routed message's own
# decision stands, whatever its reason (one user message).
OWN = -1
NO_EVIDENCE = BELOW_THRESHOLD  # no route has evidence in the window: the default route
MAX_OPENS = 0.99  # a learnt chance of a new topic never wipes out the belief entirely


@dataclass(frozen=True)
class Message:
    """One user or assistant message of a request."""

    index: int  # position in the request's messages
    role: str
    text: str


def context_mix(messages: Sequence[Message], read: Sequence[int], j: int) -> Mix:
    """The context of message j: j and the CONTEXT_MESSAGES messages before it that the rule
    reads (`read`), each weighing its length (up to CONTEXT_WEIGHT_CHARS), as the words of a
    concatenated text would in the model's mean pooling; searched as the mix of their vectors
    (router_core.mixing), so no text is embedded twice."""
    parts = [i for i in read if j - CONTEXT_MESSAGES <= i <= j]
    texts = tuple(messages[i].text for i in parts)
    return Mix(texts, tuple(float(max(1, min(len(t), CONTEXT_WEIGHT_CHARS))) for t in texts))


def assistant_tail(text: str) -> str:
    """What the rule reads of an assistant message: its last ASSISTANT_TAIL_CHARS characters
    (from a word start), nearest the user's reply; an agent's long answer costs no more."""
    if len(text) <= ASSISTANT_TAIL_CHARS:
        return text
    cut = text[-ASSISTANT_TAIL_CHARS:]
    space = cut.find(" ")
    return cut[space + 1 :] if 0 <= space < ASSISTANT_TAIL_CHARS // 4 else cut


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

    def texts(self) -> list[str]:
        """Every text the rule embeds and searches: each read message, the routed one first."""
        return [self.last.text, *(self.messages[j].text for j in self.read)]

    def contexts(self) -> list[Mix]:
        """The context of each read user message, searched as mixes of the texts' vectors."""
        return [context_mix(self.messages, self.read, j) for j in self.read if self.messages[j].role == "user"]


@dataclass(frozen=True)
class ConversationBatch:
    """T requests' window messages as padded arrays (M messages, k neighbours each)."""

    route_names: tuple[str, ...]
    thresholds: FloatArray  # (R,) each route's threshold (the route file's, else the global one)
    own_route: IntArray  # (T,) the last message's own decision (route id, -1 for the default route)
    own_score: FloatArray  # (T,) its best similarity
    single: BoolArray  # (T,) one user message in the request
    words: IntArray  # (T,) content words of the last message
    valid: BoolArray  # (T, M)
    user: BoolArray  # (T, M)
    last: BoolArray  # (T, M) the routed message
    rank: IntArray  # (T, M) included in windows of at least this many user messages
    index: IntArray  # (T, M) position in the request's messages
    cos_last: FloatArray  # (T, M) cosine to the routed message
    sims: FloatArray  # (T, M, K) the message's nearest examples
    routes: IntArray  # (T, M, K)
    ctx_sims: FloatArray  # (T, M, K) its context's nearest examples (users; -inf otherwise)
    ctx_routes: IntArray  # (T, M, K)
    follow_up: FloatArray  # (T,) the routed message's best cosine to a known follow-up (-inf: none known)
    opens: FloatArray  # (T, M) a user message's chance of a new topic, from the reply before it (0: none known)

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
        thresholds: Sequence[float],
        mixed: Mapping[Mix, Sequence[Neighbour]] | None = None,
        follow_up: Sequence[float] | FloatArray | None = None,
        reply_chance: Sequence[Mapping[str, float]] | None = None,
    ) -> ConversationBatch:
        """Arrays for `layouts`; `own` holds each last message's decided route (None: the default
        route) and best similarity; `thresholds` each route's threshold, in `route_names` order;
        `neighbours` and `vectors` every text `Layout.texts` named, `mixed` the neighbours of
        the contexts `Layout.contexts` named (only when a context weight may be used);
        `follow_up` each last message's best cosine to the route set's follow-ups (None: the
        route set has none); `reply_chance` per request, each agent message's chance that the
        user's next message opens a new topic, by text (router_core.replies; None or a text
        left out: not known)."""
        contexts = mixed or {}
        names = tuple(route_names)
        ids = {name: i for i, name in enumerate(names)}
        t_count, m_count = len(layouts), max((len(lay.read) for lay in layouts), default=0)
        shape = (t_count, m_count)
        valid = np.zeros(shape, bool)
        user = np.zeros(shape, bool)
        last = np.zeros(shape, bool)
        rank = np.zeros(shape, np.int64)
        index = np.zeros(shape, np.int64)
        cos_last = np.full(shape, -np.inf)
        sims = np.full((*shape, k), -np.inf)
        routes = np.full((*shape, k), len(names), np.int64)
        ctx_sims = np.full((*shape, k), -np.inf)
        ctx_routes = np.full((*shape, k), len(names), np.int64)
        opens = np.zeros(shape)

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
                if not last[t, m]:
                    cos_last[t, m] = float(vectors[msg.text] @ mine)
                put(sims, routes, (t, m), neighbours[msg.text])
                ctx = context_mix(lay.messages, lay.read, j) if is_user and contexts else None
                if ctx is not None and ctx in contexts:
                    put(ctx_sims, ctx_routes, (t, m), contexts[ctx])
                if is_user and reply_chance is not None and m > 0 and lay.read[m - 1] == j - 1:
                    before = lay.messages[j - 1]  # the agent message just before, within the window
                    if before.role == "assistant":
                        opens[t, m] = reply_chance[t].get(before.text, 0.0)
        return cls(
            route_names=names,
            thresholds=np.array(list(thresholds), np.float64).reshape(len(names)),
            own_route=np.array([ids.get(r, -1) if r is not None else -1 for r, _ in own], np.int64),
            own_score=np.array([s for _, s in own], np.float64),
            single=np.array([lay.users == 1 for lay in layouts], bool),
            words=np.array(words, np.int64),
            valid=valid,
            user=user,
            last=last,
            rank=rank,
            index=index,
            cos_last=cos_last,
            sims=sims,
            routes=routes,
            ctx_sims=ctx_sims,
            ctx_routes=ctx_routes,
            follow_up=np.full(t_count, -np.inf) if follow_up is None else np.array(follow_up, np.float64),
            opens=np.clip(opens, 0.0, MAX_OPENS),
        )

    def __len__(self) -> int:
        return int(self.own_route.shape[0])

    @property
    def k(self) -> int:
        """The nearest examples read per message."""
        return int(self.sims.shape[2])

    def evidence(self, floor_below: float, *, context: bool) -> FloatArray:
        """(T, M, R): per message, the sum over its nearest examples of each route of
        max(0, similarity - (the route's threshold - floor_below)); of its context with
        `context`."""
        s, r = (self.ctx_sims, self.ctx_routes) if context else (self.sims, self.routes)
        floors = np.append(self.thresholds, np.inf)[r] - floor_below
        gains = np.maximum(np.where(np.isfinite(s), s - floors, 0.0), 0.0)
        out = np.zeros((*s.shape[:2], len(self.route_names) + 1))
        t, m, _ = np.indices(s.shape)
        np.add.at(out, (t, m, r), gains)
        return out[..., :-1]


@dataclass(frozen=True)
class Outcome:
    """What one setting decided for every request of a batch."""

    route: IntArray  # (T,) route id, -1 for the default route
    reason: IntArray  # (T,) OWN, VOTE, STANDALONE, OFF_TOPIC, CONTEXT, CONTINUED or NO_EVIDENCE
    contributions: FloatArray  # (T, M) each message's weighted evidence for the chosen route
    belief: FloatArray  # (T, R) the filter's belief in each route after the last message
    support: FloatArray  # (T, R) each route's weighted evidence over the window (0: none at all)
    lead: FloatArray  # (T,) the winner's belief minus the runner-up's
    prior: IntArray  # (T,) the route the filter followed before the routed message (-1: none had evidence)


def track(
    batch: ConversationBatch,
    *,
    window: int,
    switch: float,
    floor_below: float,
    assistant_weight: float,
    context_weight: float,
    unrelated_switch: float = 0.0,
    closeness: FloatArray | None = None,
    standalone_similarity: float = 0.0,
    evidence: dict[tuple[float, bool], FloatArray] | None = None,
) -> Outcome:
    """Step 3 of the rule for every request: the forward filter over the window's messages,
    oldest first. The belief starts even; at a user message that has evidence of its own the
    topic may change (`switch` of the belief is spread evenly over the routes; for the routed
    message, when it is unrelated to the window, `closeness` (`related`) under
    `standalone_similarity`, the larger of `switch` and `unrelated_switch`; after an agent
    message whose chance of a new topic is known, `batch.opens`, at least that); every message
    then multiplies each route's belief by exp(EVIDENCE_SCALE x its weighted evidence).
    `evidence` caches `batch.evidence` arrays across calls (calibration)."""

    def ev(context: bool) -> FloatArray:
        key = (round(floor_below, 9), context)
        if evidence is None:
            return batch.evidence(floor_below, context=context)
        if key not in evidence:
            evidence[key] = batch.evidence(floor_below, context=context)
        return evidence[key]

    own_ev = ev(False)
    n, m_count, r_count = own_ev.shape
    inside = batch.valid & (batch.rank <= window)
    weight = np.where(inside, np.where(batch.user, 1.0, assistant_weight), 0.0)
    per_message = own_ev * weight[..., None]
    if context_weight:
        per_message = per_message + ev(True) * np.where(inside & batch.user, context_weight, 0.0)[..., None]
    if r_count == 0:
        empty = np.zeros((n, 0))
        return Outcome(
            np.full(n, -1),
            np.full(n, NO_EVIDENCE),
            np.zeros((n, m_count)),
            empty,
            empty,
            np.full(n, np.inf),
            np.full(n, -1),
        )
    may_switch = inside & batch.user & (own_ev.sum(axis=2) > 0)
    switches = np.full((n, m_count), switch)
    if unrelated_switch > switch:
        near = related(batch, window) if closeness is None else closeness
        switches[batch.last & (near < standalone_similarity)[:, None]] = unrelated_switch
    switches = np.maximum(switches, batch.opens)
    log_belief = np.full((n, r_count), -np.log(r_count))
    prior = np.full(n, -1)
    earlier = np.zeros(n, bool)  # some message before the routed one had evidence
    for m in range(m_count):  # a message outside the window has no evidence (adds 0) and never switches
        at_last = batch.last[:, m] & earlier
        if at_last.any():
            prior[at_last] = np.argmax(log_belief[at_last], axis=1)
        earlier |= ~batch.last[:, m] & (per_message[:, m].sum(axis=1) > 0)
        moves = may_switch[:, m] & (switches[:, m] > 0)
        if moves.any():
            rows = np.flatnonzero(moves)
            chance = switches[rows, m][:, None]
            log_belief[rows] = np.log((1 - chance) * _normalised(log_belief[rows]) + chance / r_count)
        log_belief += EVIDENCE_SCALE * per_message[:, m]
    belief = _normalised(log_belief)
    support = per_message.sum(axis=1)
    winner = np.argmax(belief, axis=1)
    contributions = np.take_along_axis(per_message, winner[:, None, None], axis=2)[..., 0]
    ordered_belief = -np.sort(-belief, axis=1)
    lead = ordered_belief[:, 0] - (ordered_belief[:, 1] if r_count > 1 else 0.0)
    any_evidence = support.sum(axis=1) > 0
    from_last = (contributions * batch.last).sum(axis=1) > 0
    from_earlier = (contributions * ~batch.last).sum(axis=1) > 0
    reason = np.select(
        [~any_evidence, ~from_last, ~from_earlier],
        [NO_EVIDENCE, CONTINUED, VOTE],
        default=CONTEXT,
    )
    route = np.where(any_evidence, winner, -1)
    return Outcome(route.astype(np.int64), reason.astype(np.int64), contributions, belief, support, lead, prior)


def _normalised(log_belief: FloatArray) -> FloatArray:
    """Beliefs (rows summing to 1) from unnormalised log-beliefs."""
    p = np.exp(log_belief - log_belief.max(axis=1, keepdims=True))
    out: FloatArray = p / p.sum(axis=1, keepdims=True)
    return out


def related(batch: ConversationBatch, window: int) -> FloatArray:
    """(T,) the routed message's best cosine to the earlier messages of the window (-inf: none)."""
    inside = batch.valid & (batch.rank <= window) & ~batch.last
    closeness: FloatArray = np.where(inside, batch.cos_last, -np.inf).max(axis=1, initial=-np.inf)
    return closeness


def own_votes(batch: ConversationBatch, own_threshold: FloatArray) -> IntArray:
    """(T,) the routed message's nearest examples of its own vote's route at or above that
    route's threshold (its votes; 0 when the vote routes it nowhere)."""
    rows = np.arange(len(batch))
    at = np.argmax(batch.last, axis=1)
    mine = (batch.routes[rows, at] == batch.own_route[:, None]) & (batch.sims[rows, at] >= own_threshold[:, None])
    votes: IntArray = mine.sum(axis=1) * (batch.own_route >= 0)
    return votes


def finish(
    batch: ConversationBatch,
    tracked: Outcome,
    closeness: FloatArray,
    *,
    standalone_similarity: float,
    standalone_words: int,
    standalone_margin: float,
    follow_up_similarity: float,
) -> Outcome:
    """Steps 1 and 2 of the rule over the filter's outcome: a one-message request is its own
    decision; a standalone request (at least `standalone_words` content words, cosine to every
    earlier message of the window under `standalone_similarity`, and to every known follow-up
    under `follow_up_similarity`) that its own vote does not
    route with confidence (best similarity under its route's threshold + `standalone_margin`,
    or no route at all) goes to the default route unless the conversation leads to its own
    vote's route (the filter followed that route before the request, `Outcome.prior`, and
    still does after it: the filter's route) or most of its k nearest examples name that route
    at or above the route's threshold (`own_votes`: its own route). Either is reason
    STANDALONE."""
    routed = batch.own_route >= 0
    own_threshold = np.append(batch.thresholds, np.inf)[np.where(routed, batch.own_route, len(batch.thresholds))]
    confident = routed & (batch.own_score >= own_threshold + standalone_margin)
    standalone = (
        ~batch.single
        & (batch.words >= standalone_words)
        & (closeness < standalone_similarity)
        & (batch.follow_up < follow_up_similarity)
    )
    # the conversation's own topic, not one the request itself switched to
    agrees = routed & (tracked.route == batch.own_route) & (tracked.prior == batch.own_route)
    unsure = standalone & ~confident & ~agrees
    # most of its nearest examples name its route: a request of its own, however weakly similar
    voted = unsure & (2 * own_votes(batch, own_threshold) > batch.k)
    off_topic = unsure & ~voted
    route = np.select(
        [batch.single, off_topic, voted],
        [batch.own_route, np.full(len(batch), -1), batch.own_route],
        default=tracked.route,
    )
    reason = np.select(
        [batch.single, off_topic, voted | (standalone & agrees)],
        [OWN, OFF_TOPIC, STANDALONE],
        default=tracked.reason,
    )
    return Outcome(
        route.astype(np.int64),
        reason.astype(np.int64),
        tracked.contributions,
        tracked.belief,
        tracked.support,
        tracked.lead,
        tracked.prior,
    )


def decide(
    batch: ConversationBatch,
    *,
    window: int,
    switch: float,
    floor_below: float,
    assistant_weight: float,
    context_weight: float,
    unrelated_switch: float,
    standalone_similarity: float,
    standalone_words: int,
    standalone_margin: float,
    follow_up_similarity: float,
) -> Outcome:
    """Apply one setting of the rule (router_core.conversation) to every request of `batch`."""
    closeness = related(batch, window)
    tracked = track(
        batch,
        window=window,
        switch=switch,
        floor_below=floor_below,
        assistant_weight=assistant_weight,
        context_weight=context_weight,
        unrelated_switch=unrelated_switch,
        closeness=closeness,
        standalone_similarity=standalone_similarity,
    )
    return finish(
        batch,
        tracked,
        closeness,
        standalone_similarity=standalone_similarity,
        standalone_words=standalone_words,
        standalone_margin=standalone_margin,
        follow_up_similarity=follow_up_similarity,
    )


def _closeness(batch: ConversationBatch, cache: dict[Any, Any], window: int) -> FloatArray:
    """`related` for a window, computed once per batch (calibration)."""
    closeness: dict[int, FloatArray] = cache.setdefault("related", {})
    if window not in closeness:
        closeness[window] = related(batch, window)
    return closeness[window]


def stage_one(batch: ConversationBatch, cache: dict[Any, Any], **setting: Any) -> Outcome:
    """The expensive part of `decide` (the filter), for calibration: `setting` holds every
    parameter; `cache` keeps what settings share."""
    return track(
        batch,
        window=setting["window"],
        switch=setting["switch"],
        floor_below=setting["floor_below"],
        assistant_weight=setting["assistant_weight"],
        context_weight=setting["context_weight"],
        unrelated_switch=setting["unrelated_switch"],
        closeness=_closeness(batch, cache, setting["window"]),
        standalone_similarity=setting["standalone_similarity"],
        evidence=cache.setdefault("evidence", {}),
    )


def stage_two(batch: ConversationBatch, first: Outcome, cache: dict[Any, Any], **setting: Any) -> Outcome:
    """The cheap rest of `decide` over `stage_one`'s outcome (the parameters declared `after_vote`)."""
    return finish(
        batch,
        first,
        _closeness(batch, cache, setting["window"]),
        standalone_similarity=setting["standalone_similarity"],
        standalone_words=setting["standalone_words"],
        standalone_margin=setting["standalone_margin"],
        follow_up_similarity=setting["follow_up_similarity"],
    )
