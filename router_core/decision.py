"""The routing decision: a pure function of the nearest neighbours and explicit parameters.

`decide_many` runs the vectorised engine (`router_core.engine`) on many queries and turns each
row into a `Decision` that shows its vote; `decide` is the one-query view.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from router_core.engine import FALLBACK, Tally, vote
from router_core.neighbours import Neighbour, NeighbourArrays
from router_core.params import DecisionParams
from router_core.reasons import REASONS, DecidedBy, Reason


@dataclass(frozen=True)
class TurnShare:
    """A message of a conversation and its share of the evidence for the chosen route."""

    index: int  # position in the request's messages
    share: float


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
    lead: float = math.inf  # the leader's share of the vote (or evidence) over the runner-up's
    ranking: tuple[str, ...] = ()  # routes best first: voted ones, then the other neighbours' routes
    turns: tuple[TurnShare, ...] = ()  # conversations: the messages that decided
    decided_by: DecidedBy = "vote"

    @property
    def vote_counts(self) -> Mapping[str, int]:
        """Votes per route, winner first."""
        return {v.route: v.count for v in self.votes}


def decide_many(neighbours: Sequence[Iterable[Neighbour]], params: DecisionParams) -> list[Decision]:
    """One decision per query, from its neighbours (any order, any count >= k)."""
    arrays = NeighbourArrays.build(neighbours)
    tally = vote(arrays, params, arrays.thresholds(params.threshold, params.route_thresholds), detail=True)
    routes = tally.predictions(params.margin).tolist()
    reasons = tally.reasons(params.margin).tolist()
    leads = tally.lead.tolist()
    decisions = []
    for i, row in enumerate(arrays.rows):
        nearest = row[: tally.k]
        reason = REASONS[reasons[i]]
        route = params.default_route if routes[i] == FALLBACK else arrays.route_names[routes[i]]
        votes = _ranked_votes(tally, arrays, i)
        voted = [v.route for v in votes]
        decisions.append(
            Decision(
                route=route,
                fallback=routes[i] == FALLBACK,
                score=nearest[0].similarity if nearest else 0.0,
                reason=reason,
                votes=votes,
                neighbours=nearest,
                lead=leads[i],
                ranking=tuple(dict.fromkeys([*voted, *(n.route for n in row)])),
            )
        )
    return decisions


def decide(neighbours: Iterable[Neighbour], params: DecisionParams) -> Decision:
    """Vote among the k nearest neighbours and apply the threshold (see `router_core.engine`).

    threshold_mode "neighbour" (the default): only neighbours that clear their route's
    threshold vote; no survivor means the default route. threshold_mode "winner": all k
    neighbours vote, and the default route is chosen when the winner's best similarity is under
    the winner's threshold. Ties in the vote are broken by summed (or, with tie_break="max",
    best) similarity, then by route name. A winner whose share of the vote beats the
    runner-up's by less than `margin` means the default route too.
    """
    return decide_many([neighbours], params)[0]


def _ranked_votes(tally: Tally, arrays: NeighbourArrays, row: int) -> tuple[RouteVote, ...]:
    """The routes that received votes in row `row`, in the engine's ranking order."""
    voted, counts, sums, best, weight, tie = tally.voted, tally.counts, tally.sums, tally.best, tally.weight, tally.tie
    if voted is None or counts is None or sums is None or best is None or weight is None or tie is None:
        return ()
    seen: dict[int, tuple[float, float, RouteVote]] = {}
    for j in range(tally.k):
        rid = int(arrays.routes[row, j])
        if not voted[row, j] or rid in seen:
            continue
        seen[rid] = (
            float(weight[row, j]),
            float(tie[row, j]),
            RouteVote(arrays.route_names[rid], int(counts[row, j]), float(sums[row, j]), float(best[row, j])),
        )
    order = sorted(seen, key=lambda rid: (-seen[rid][0], -seen[rid][1], rid))
    return tuple(seen[rid][2] for rid in order)
