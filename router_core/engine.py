"""The vote, vectorised: the one implementation of the routing rule.

For N queries at once (the service's micro-batch, or calibration's thousands of settings over
the same validation neighbours): take the k nearest neighbours, drop those under their route's
threshold (threshold mode "neighbour") or keep them all and test the winner's best similarity
instead (mode "winner"), weigh each route's votes (count or summed similarity), rank routes by
weight, then summed or best similarity, then name (smaller id), and fall back when no route may
win or when the winner's share of the vote leads the runner-up's by less than the margin.
`router_core.decision.decide` is the one-query view of this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from router_core.neighbours import BoolArray, FloatArray, IntArray, NeighbourArrays
from router_core.params import DecisionParams
from router_core.reasons import AMBIGUOUS, BELOW_THRESHOLD, NO_NEIGHBOURS, VOTE

FALLBACK = -1
"""The route id of "no route": the default route."""


@dataclass(frozen=True)
class Tally:
    """The vote of N queries under one setting, before the margin is applied.

    The per-position arrays (N, k) hold, for the neighbour at position j, the totals of its
    route: whether it voted, the route's vote count, summed and best similarity, its weight and
    its tie-break value. They are what a decision shows (`detail=True` only).
    """

    winner: IntArray  # route id of the top-ranked route; FALLBACK when no route may win
    lead: FloatArray  # the winner's share lead over the runner-up; +inf without a runner-up
    reason: IntArray  # NO_NEIGHBOURS, BELOW_THRESHOLD or VOTE (the margin is not applied yet)
    k: int
    voted: BoolArray | None = None
    counts: FloatArray | None = None
    sums: FloatArray | None = None
    best: FloatArray | None = None
    weight: FloatArray | None = None
    tie: FloatArray | None = None

    def predictions(self, margin: float) -> IntArray:
        """Route id per query, FALLBACK where the lead is under `margin` or no route may win."""
        if margin <= 0:
            return self.winner
        return np.where(self.lead < margin, FALLBACK, self.winner)

    def reasons(self, margin: float) -> IntArray:
        """Reason code per query once the margin is applied."""
        if margin <= 0:
            return self.reason
        return np.where((self.reason == VOTE) & (self.lead < margin), AMBIGUOUS, self.reason)


def vote(arrays: NeighbourArrays, params: DecisionParams, thresholds: FloatArray, *, detail: bool = False) -> Tally:
    """Tally the first `params.k` neighbours of every query (`params.margin` is not applied:
    see `Tally.predictions`). `thresholds` holds each route id's threshold
    (`NeighbourArrays.thresholds`)."""
    k = min(params.k, arrays.width)
    n = len(arrays)
    if k == 0 or n == 0:
        return Tally(
            np.full(n, FALLBACK, dtype=np.int64),
            np.full(n, np.inf),
            np.full(n, NO_NEIGHBOURS, dtype=np.int64),
            k,
        )
    sims = arrays.similarities[:, :k]
    routes = arrays.routes[:, :k]
    present = np.isfinite(sims)
    eq = arrays.same_route(k)
    survives = sims >= thresholds[routes] if params.threshold_mode == "neighbour" else present
    kept_sims = np.where(survives, sims, 0.0)
    counts = np.einsum("nij,ni->nj", eq, survives.astype(np.float64))
    sums = np.einsum("nij,ni->nj", eq, kept_sims)
    has_votes = counts > 0
    weight = counts if params.vote == "count" else sums
    need_best = detail or params.tie_break == "max"
    best = np.where((eq > 0) & survives[:, :, None], sims[:, :, None], -np.inf).max(axis=1) if need_best else sums
    tie = sums if params.tie_break == "sum" else best
    top_weight = np.where(has_votes, weight, -np.inf).max(axis=1)
    first = has_votes & (weight == top_weight[:, None])
    top_tie = np.where(first, tie, -np.inf).max(axis=1)
    second = first & (tie == top_tie[:, None])
    pad = len(arrays.route_names)
    winner = np.where(second, routes, pad).min(axis=1)
    may_win = has_votes.any(axis=1)
    runner_up = np.where(has_votes & (routes != winner[:, None]), weight, -np.inf).max(axis=1)
    # Sum the route weights largest first, sequentially, so boundary cases round the same way
    # whatever the neighbours' order.
    first_of_route = has_votes & ~(eq * np.triu(np.ones((k, k)), 1)).any(axis=1)
    ranked = -np.sort(-np.where(first_of_route, weight, 0.0), axis=1)
    total = np.cumsum(ranked, axis=1)[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        # Similarity-weighted votes can sum to nothing or less (negative cosines in winner
        # mode): no route then leads by any share.
        share = np.where(total > 0, (top_weight - runner_up) / total, 0.0)
        lead = np.where(np.isfinite(runner_up), share, np.inf)
    if params.threshold_mode == "winner":
        winner_best = np.where(routes == winner[:, None], sims, -np.inf).max(axis=1)
        may_win &= winner_best >= thresholds[np.minimum(winner, pad)]
    reason = np.where(present[:, 0], np.where(may_win, VOTE, BELOW_THRESHOLD), NO_NEIGHBOURS).astype(np.int64)
    tally = Tally(np.where(may_win, winner, FALLBACK).astype(np.int64), lead, reason, k)
    if not detail:
        return tally
    return Tally(
        winner=tally.winner,
        lead=tally.lead,
        reason=tally.reason,
        k=k,
        voted=survives,
        counts=counts,
        sums=sums,
        best=best,
        weight=weight,
        tie=np.asarray(tie, np.float64),
    )


def predict(arrays: NeighbourArrays, params: DecisionParams, thresholds: FloatArray | None = None) -> IntArray:
    """Route id (or FALLBACK) per query under `params` (margin included). Without
    `thresholds`, those of `params` (global and per route)."""
    if thresholds is None:
        thresholds = arrays.thresholds(params.threshold, params.route_thresholds)
    return vote(arrays, params, thresholds).predictions(params.margin)
