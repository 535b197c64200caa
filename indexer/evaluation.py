"""Score routing decisions against labelled queries: the scoring is pure and lives in
`router_core.evaluation` (the service's evaluation endpoint uses the same code)."""

from __future__ import annotations

from router_core.evaluation import (
    EXAMPLES_PER_CONFUSION,
    Confusion,
    CurvePoint,
    EvalReport,
    RouteScore,
    evaluate,
    neighbours_for,
    threshold_curve,
)

__all__ = [
    "EXAMPLES_PER_CONFUSION",
    "Confusion",
    "CurvePoint",
    "EvalReport",
    "RouteScore",
    "evaluate",
    "neighbours_for",
    "threshold_curve",
]
