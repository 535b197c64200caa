"""Decision-rule variants measured by calibration that router_core does not offer yet.

"winner" threshold mode: every one of the k nearest neighbours votes, and the query falls back
when the winning route's best similarity is under that route's threshold. router_core's rule
("neighbour" mode) drops each neighbour under its route's threshold before voting, so a query
whose few strong neighbours are outvoted by nothing can still be routed on a single weak one,
and one whose neighbours straddle the threshold loses part of its vote. On CLINC150 with
all-MiniLM-L6-v2 the winner rule raised the calibrated validation objective by about two
points. To serve it, router_core needs `threshold_mode: Literal["neighbour", "winner"]` in
RouterFile, DecisionParams and RouteTable.to_dict, and `decide` branching to this rule;
calibration detects the field (`supports_threshold_mode`) and then adopts and writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from functools import cache
from typing import Literal

from router_core.decision import Decision, Neighbour, Reason, RouteVote, decide
from router_core.routes import DecisionParams

ThresholdMode = Literal["neighbour", "winner"]


@cache
def supports_threshold_mode() -> bool:
    """Whether router_core's DecisionParams carries `threshold_mode` (so it can be served)."""
    return any(f.name == "threshold_mode" for f in fields(DecisionParams))


def threshold_mode_of(params: DecisionParams) -> ThresholdMode:
    """The params' threshold mode ("neighbour" when router_core has no such field)."""
    mode = getattr(params, "threshold_mode", "neighbour")
    return "winner" if mode == "winner" else "neighbour"


def with_threshold_mode(params: DecisionParams, mode: ThresholdMode) -> DecisionParams:
    """`params` in `mode`; raise ValueError for "winner" where router_core cannot carry it."""
    if supports_threshold_mode():
        return replace(params, threshold_mode=mode)  # type: ignore[call-arg]
    if mode != "neighbour":
        raise ValueError("router_core.DecisionParams has no threshold_mode field yet")
    return params


def decide_with(
    neighbours: Sequence[Neighbour], params: DecisionParams, mode: ThresholdMode
) -> Decision:
    """Decide in the given threshold mode (router_core's own decide wherever it can)."""
    if supports_threshold_mode():
        return decide(neighbours, with_threshold_mode(params, mode))
    return decide(neighbours, params) if mode == "neighbour" else decide_winner(neighbours, params)


def decide_winner(neighbours: Sequence[Neighbour], params: DecisionParams) -> Decision:
    """Vote among all k nearest neighbours; fall back when the winner's best similarity is
    under its route's threshold, or its lead is under the margin. Same ordering, tie-breaks
    and margin as `router_core.decision.decide`."""
    nearest = tuple(sorted(neighbours, key=lambda n: (-n.similarity, n.route, n.text))[: params.k])
    if not nearest:
        return Decision(params.default_route, True, 0.0, "no_neighbours", (), nearest)
    score = nearest[0].similarity
    by_route: dict[str, list[float]] = {}
    for n in nearest:
        by_route.setdefault(n.route, []).append(n.similarity)
    votes = [RouteVote(r, len(s), sum(s), max(s)) for r, s in by_route.items()]
    ranked = tuple(sorted(votes, key=lambda v: _rank_key(v, params), reverse=True))
    winner = ranked[0]
    if winner.similarity_max < params.threshold_for(winner.route):
        reason: Reason = "below_threshold"
        return Decision(params.default_route, True, score, reason, ranked, nearest)
    if params.margin > 0 and len(ranked) > 1:
        total = sum(_weight(v, params) for v in ranked)
        lead = (_weight(ranked[0], params) - _weight(ranked[1], params)) / total
        if lead < params.margin:
            return Decision(params.default_route, True, score, "ambiguous", ranked, nearest)
    return Decision(winner.route, False, score, "vote", ranked, nearest)


def _weight(vote: RouteVote, params: DecisionParams) -> float:
    return float(vote.count) if params.vote == "count" else vote.similarity_sum


def _rank_key(vote: RouteVote, params: DecisionParams) -> tuple[float, float, str]:
    tie = vote.similarity_sum if params.tie_break == "sum" else vote.similarity_max
    return (_weight(vote, params), tie, "".join(chr(0x10FFFF - ord(c)) for c in vote.route))
