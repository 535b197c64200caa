"""`router_core.decision.decide` for many queries and many settings at once, with numpy.

Calibration tries thousands of decision settings on the same stored neighbours; calling
`decide` per query and setting would take minutes, this takes milliseconds per setting. It
follows `decide` rule for rule (order neighbours by similarity then route then text, keep the
first k, drop those under their route's threshold, or in threshold mode "winner" keep them all
and test the winner's best similarity instead, rank routes by vote weight, then summed or best
similarity, then name; fall back when nothing survives or the winner's lead is under the
margin). The tests compare it with `decide` on random data, and calibration re-checks the
chosen setting with `decide` itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from indexer.labelled import is_fallback_label
from router_core.decision import Neighbour
from router_core.routes import DecisionParams, ThresholdMode, TieBreak, VoteWeight

FALLBACK = -1
UNKNOWN = -2

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class NeighbourArrays:
    """Neighbours of N queries as (N, K) arrays, in `decide`'s order.

    Route ids index `route_names`, which is sorted, so a smaller id is the alphabetically first
    route (decide's last tie-break). Missing neighbours have similarity -inf and the padding id
    len(route_names).
    """

    similarities: FloatArray
    routes: IntArray
    route_names: tuple[str, ...]
    _eq: dict[int, FloatArray] = field(default_factory=dict, compare=False, repr=False)
    _ids: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, neighbours: Sequence[Sequence[Neighbour]], extra_routes: Iterable[str] = ()) -> NeighbourArrays:
        """Arrays for `neighbours`; `extra_routes` get ids even when no neighbour has them."""
        names = tuple(sorted({n.route for row in neighbours for n in row} | set(extra_routes)))
        ids = {name: i for i, name in enumerate(names)}
        width = max((len(row) for row in neighbours), default=0)
        sims = np.full((len(neighbours), width), -np.inf, dtype=np.float64)
        routes = np.full((len(neighbours), width), len(names), dtype=np.int64)
        for q, row in enumerate(neighbours):
            ordered = sorted(row, key=lambda n: (-n.similarity, n.route, n.text))
            for j, n in enumerate(ordered):
                sims[q, j] = n.similarity
                routes[q, j] = ids[n.route]
        return cls(sims, routes, names)

    def __len__(self) -> int:
        return int(self.similarities.shape[0])

    @property
    def width(self) -> int:
        """The most neighbours stored per query (the largest usable k)."""
        return int(self.similarities.shape[1])

    def route_id(self, name: str) -> int | None:
        """The id of a route name, or None."""
        if not self._ids and self.route_names:
            self._ids.update({r: i for i, r in enumerate(self.route_names)})
        return self._ids.get(name)

    def subset(self, rows: IntArray) -> NeighbourArrays:
        """The same arrays restricted to some queries."""
        return NeighbourArrays(self.similarities[rows], self.routes[rows], self.route_names)

    def same_route(self, k: int) -> FloatArray:
        """(N, k, k): 1.0 where neighbours i and j of a query belong to the same route."""
        if k not in self._eq:
            r = self.routes[:, :k]
            self._eq[k] = (r[:, :, None] == r[:, None, :]).astype(np.float64)
        return self._eq[k]

    def thresholds(self, default: float, per_route: Mapping[str, float] | None = None) -> FloatArray:
        """The threshold of each route id (+inf for the padding id)."""
        values = np.full(len(self.route_names) + 1, default, dtype=np.float64)
        values[-1] = np.inf
        for name, value in (per_route or {}).items():
            rid = self.route_id(name)
            if rid is not None:
                values[rid] = value
        return values


@dataclass(frozen=True)
class Votes:
    """The vote of every query under one setting, before the margin is applied."""

    winner: IntArray  # route id of the top-ranked route, FALLBACK when nothing survived
    lead: FloatArray  # the winner's share lead over the runner-up; +inf without a runner-up

    def predictions(self, margin: float) -> IntArray:
        """Route id per query, FALLBACK where the lead is under `margin` or nothing survived."""
        if margin <= 0:
            return self.winner
        return np.where(self.lead < margin, FALLBACK, self.winner)


def vote(
    arrays: NeighbourArrays,
    k: int,
    thresholds: FloatArray,
    vote_weight: VoteWeight = "count",
    tie_break: TieBreak = "sum",
    mode: ThresholdMode = "neighbour",
) -> Votes:
    """Tally the first k neighbours of every query the way `decide` does.

    mode "neighbour" is `router_core.decision.decide`: a neighbour votes only when it clears
    its route's threshold. mode "winner" is `router_core.decide` with threshold_mode="winner": all k
    neighbours vote and the query falls back when the winner's best similarity is under the
    winner's threshold.
    """
    k = min(k, arrays.width)
    n = len(arrays)
    if k == 0 or n == 0:
        return Votes(np.full(n, FALLBACK, dtype=np.int64), np.full(n, np.inf))
    sims = arrays.similarities[:, :k]
    routes = arrays.routes[:, :k]
    eq = arrays.same_route(k)
    survives = sims >= thresholds[routes] if mode == "neighbour" else np.isfinite(sims)
    kept_sims = np.where(survives, sims, 0.0)
    counts = np.einsum("nij,ni->nj", eq, survives.astype(np.float64))
    sums = np.einsum("nij,ni->nj", eq, kept_sims)
    has_votes = counts > 0
    weight = counts if vote_weight == "count" else sums
    if tie_break == "sum":
        tie = sums
    else:
        tie = np.where((eq > 0) & survives[:, :, None], sims[:, :, None], -np.inf).max(axis=1)
    top_weight = np.where(has_votes, weight, -np.inf).max(axis=1)
    first = has_votes & (weight == top_weight[:, None])
    top_tie = np.where(first, tie, -np.inf).max(axis=1)
    second = first & (tie == top_tie[:, None])
    pad = len(arrays.route_names)
    winner = np.where(second, routes, pad).min(axis=1)
    anyone = has_votes.any(axis=1)
    runner_up = np.where(has_votes & (routes != winner[:, None]), weight, -np.inf).max(axis=1)
    # decide() divides by the sum of the route weights taken in ranked order; sum them in the
    # same order (largest first, sequentially) so boundary cases round the same way.
    first_of_route = has_votes & ~(eq * np.triu(np.ones((k, k)), 1)).any(axis=1)
    ranked = -np.sort(-np.where(first_of_route, weight, 0.0), axis=1)
    total = np.cumsum(ranked, axis=1)[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, (top_weight - runner_up) / total, 0.0)
        lead = np.where(np.isfinite(runner_up), share, np.inf)
    if mode == "winner":
        best = np.where(routes == winner[:, None], sims, -np.inf).max(axis=1)
        anyone &= best >= thresholds[np.minimum(winner, pad)]
    return Votes(np.where(anyone, winner, FALLBACK).astype(np.int64), lead)


def predict(arrays: NeighbourArrays, params: DecisionParams, thresholds: FloatArray) -> IntArray:
    """Route id (or FALLBACK) per query under `params`, with these per-route thresholds."""
    votes = vote(arrays, params.k, thresholds, params.vote, params.tie_break, params.threshold_mode)
    return votes.predictions(params.margin)


def gold_ids(arrays: NeighbourArrays, labels: Sequence[str], default_route: str) -> IntArray:
    """Route id per gold label: FALLBACK for `oos` or the default route, UNKNOWN for others."""
    out = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        if is_fallback_label(label, default_route):
            out[i] = FALLBACK
        else:
            rid = arrays.route_id(label)
            out[i] = UNKNOWN if rid is None else rid
    return out


def route_label(arrays: NeighbourArrays, rid: int, default_route: str) -> str:
    """The route name of an id (the default route for FALLBACK)."""
    return default_route if rid == FALLBACK else arrays.route_names[rid]
