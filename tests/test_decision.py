"""The routing decision as a pure function, table-driven."""

from __future__ import annotations

import pytest

from router_core import DecisionParams, Neighbour
from router_core.decision import decide


def n(route: str, sim: float, text: str = "") -> Neighbour:
    return Neighbour(text or f"{route}-{sim}", route, sim)


BASE = DecisionParams(k=5, threshold=0.5, default_route="default")

CASES = [
    # (id, neighbours, params, route, fallback, reason, votes)
    ("clear majority", [n("a", 0.9), n("a", 0.8), n("b", 0.85)], BASE, "a", False, "vote", {"a": 2, "b": 1}),
    ("all below threshold", [n("a", 0.4), n("b", 0.3)], BASE, "default", True, "below_threshold", {}),
    ("no neighbours", [], BASE, "default", True, "no_neighbours", {}),
    (
        "below-threshold neighbours do not vote",
        [n("a", 0.9), n("b", 0.45), n("b", 0.44)],
        BASE,
        "a",
        False,
        "vote",
        {"a": 1},
    ),
    (
        "tie broken by summed similarity",
        [n("a", 0.9), n("a", 0.55), n("b", 0.8), n("b", 0.7)],
        BASE,
        "b",
        False,
        "vote",
        {"b": 2, "a": 2},
    ),
    (
        "tie broken by best similarity when tie_break=max",
        [n("a", 0.9), n("a", 0.55), n("b", 0.8), n("b", 0.7)],
        DecisionParams(k=5, threshold=0.5, tie_break="max"),
        "a",
        False,
        "vote",
        {"a": 2, "b": 2},
    ),
    (
        "exact tie falls to the alphabetically first route",
        [n("b", 0.7), n("a", 0.7)],
        BASE,
        "a",
        False,
        "vote",
        {"a": 1, "b": 1},
    ),
    (
        "exact tie between a name and its prefix goes to the prefix",
        [n("billing-eu", 0.7), n("billing", 0.7)],
        BASE,
        "billing",
        False,
        "vote",
        {"billing": 1, "billing-eu": 1},
    ),
    (
        "only the k nearest are considered",
        [n("a", 0.9), n("b", 0.8), n("b", 0.79), n("b", 0.78)],
        DecisionParams(k=1, threshold=0.5),
        "a",
        False,
        "vote",
        {"a": 1},
    ),
    (
        "per-route threshold overrides the global one",
        [n("a", 0.6), n("b", 0.55), n("b", 0.52)],
        DecisionParams(k=5, threshold=0.5, route_thresholds={"b": 0.7}),
        "a",
        False,
        "vote",
        {"a": 1},
    ),
    (
        "similarity-weighted vote lets fewer but closer neighbours win",
        [n("a", 0.95), n("a", 0.9), n("b", 0.6), n("b", 0.6), n("b", 0.6)],
        DecisionParams(k=5, threshold=0.5, vote="similarity"),
        "a",
        False,
        "vote",
        {"a": 2, "b": 3},
    ),
    (
        "a narrow lead under the margin falls back as ambiguous",
        [n("a", 0.9), n("a", 0.8), n("b", 0.85)],
        DecisionParams(k=5, threshold=0.5, margin=0.5),
        "default",
        True,
        "ambiguous",
        {"a": 2, "b": 1},
    ),
    (
        "a wide lead clears the margin",
        [n("a", 0.9), n("a", 0.8), n("a", 0.7), n("b", 0.85)],
        DecisionParams(k=5, threshold=0.5, margin=0.4),
        "a",
        False,
        "vote",
        {"a": 3, "b": 1},
    ),
    (
        "winner mode: every neighbour votes, below-threshold ones too",
        [n("a", 0.9), n("b", 0.45), n("b", 0.44)],
        DecisionParams(k=5, threshold=0.5, threshold_mode="winner"),
        "default",
        True,
        "below_threshold",
        {"b": 2, "a": 1},
    ),
    (
        "winner mode: a winner whose best neighbour clears its threshold routes",
        [n("a", 0.6), n("a", 0.45), n("b", 0.58)],
        DecisionParams(k=5, threshold=0.5, threshold_mode="winner"),
        "a",
        False,
        "vote",
        {"a": 2, "b": 1},
    ),
    (
        "winner mode: the winner's own per-route threshold decides",
        [n("a", 0.65), n("a", 0.6), n("b", 0.9)],
        DecisionParams(k=5, threshold=0.5, route_thresholds={"a": 0.7}, threshold_mode="winner"),
        "default",
        True,
        "below_threshold",
        {"a": 2, "b": 1},
    ),
    (
        "winner mode: no neighbours still falls back",
        [],
        DecisionParams(k=5, threshold=0.5, threshold_mode="winner"),
        "default",
        True,
        "no_neighbours",
        {},
    ),
]


@pytest.mark.parametrize(
    ("neighbours", "params", "route", "fallback", "reason", "votes"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide_table(neighbours, params, route, fallback, reason, votes) -> None:
    """Each row: the decision's route, fallback flag, reason and vote counts."""
    d = decide(neighbours, params)
    assert (d.route, d.fallback, d.reason) == (route, fallback, reason)
    assert dict(d.vote_counts) == votes


def test_score_is_best_similarity_even_on_fallback() -> None:
    """`score` reports the closest neighbour, also when it did not clear the threshold."""
    d = decide([n("a", 0.3), n("b", 0.42)], BASE)
    assert d.fallback
    assert d.score == pytest.approx(0.42)


def test_decision_does_not_depend_on_input_order() -> None:
    """Shuffled neighbours give the same decision."""
    items = [n("a", 0.7), n("b", 0.7), n("a", 0.6), n("b", 0.6), n("c", 0.9)]
    first = decide(items, BASE)
    assert all(decide(p, BASE) == first for p in (items[::-1], items[2:] + items[:2]))
