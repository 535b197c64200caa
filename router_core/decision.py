"""The routing decision: a pure function of the nearest neighbours and explicit parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from router_core.routes import DecisionParams

Reason = Literal["vote", "below_threshold", "ambiguous", "no_neighbours"]


@dataclass(frozen=True)
class Neighbour:
    """One stored example near the query."""

    text: str
    route: str
    similarity: float


@dataclass(frozen=True)
class RouteVote:
    """What one route collected among the neighbours that voted."""

    route: str
    count: int
    similarity_sum: float
    similarity_max: float


@dataclass(frozen=True)
class Decision:
    """Where a query goes. `fallback` is true when the default route was chosen."""

    route: str
    fallback: bool
    score: float
    reason: Reason
    votes: tuple[RouteVote, ...]
    neighbours: tuple[Neighbour, ...]

    @property
    def vote_counts(self) -> Mapping[str, int]:
        """Votes per route, winner first."""
        return {v.route: v.count for v in self.votes}


def decide(neighbours: Sequence[Neighbour], params: DecisionParams) -> Decision:
    """Vote among the k nearest neighbours and apply the threshold.

    threshold_mode "neighbour" (the default): only neighbours that clear their route's
    threshold vote; no survivor means the default route. threshold_mode "winner": all k
    neighbours vote, and the default route is chosen when the winner's best similarity is under
    the winner's threshold (a route cannot win on one weak neighbour outvoted by nothing, nor
    lose part of its vote to neighbours straddling the threshold).

    Ties in the vote are broken by summed (or, with tie_break="max", best) similarity, then by
    route name so the result never depends on input order. A winner whose share of the vote
    beats the runner-up's by less than `margin` means the default route too.
    """
    nearest = tuple(sorted(neighbours, key=lambda n: (-n.similarity, n.route, n.text))[: params.k])
    if not nearest:
        return Decision(params.default_route, True, 0.0, "no_neighbours", (), nearest)
    score = nearest[0].similarity
    if params.threshold_mode == "winner":
        voters: Sequence[Neighbour] = nearest
    else:
        voters = [n for n in nearest if n.similarity >= params.threshold_for(n.route)]
        if not voters:
            return Decision(params.default_route, True, score, "below_threshold", (), nearest)
    ranked = tuple(sorted(_tally(voters), key=lambda v: _rank_key(v, params)))
    winner = ranked[0]
    if winner.similarity_max < params.threshold_for(winner.route):
        return Decision(params.default_route, True, score, "below_threshold", ranked, nearest)
    if params.margin > 0 and len(ranked) > 1:
        total = sum(_weight(v, params) for v in ranked)
        # Similarity-weighted votes can sum to nothing or less (negative cosines in winner
        # mode): no route then leads by any share.
        lead = (_weight(ranked[0], params) - _weight(ranked[1], params)) / total if total > 0 else 0.0
        if lead < params.margin:
            return Decision(params.default_route, True, score, "ambiguous", ranked, nearest)
    return Decision(winner.route, False, score, "vote", ranked, nearest)


def _tally(survivors: Sequence[Neighbour]) -> list[RouteVote]:
    by_route: dict[str, list[float]] = {}
    for n in survivors:
        by_route.setdefault(n.route, []).append(n.similarity)
    return [RouteVote(r, len(s), sum(s), max(s)) for r, s in by_route.items()]


def _weight(vote: RouteVote, params: DecisionParams) -> float:
    return float(vote.count) if params.vote == "count" else vote.similarity_sum


def _rank_key(vote: RouteVote, params: DecisionParams) -> tuple[float, float, str]:
    """Ascending order puts the winner first: most weight, then tie-break, then first name."""
    tie = vote.similarity_sum if params.tie_break == "sum" else vote.similarity_max
    return (-_weight(vote, params), -tie, vote.route)
