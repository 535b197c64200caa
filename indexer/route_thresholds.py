"""Per-route thresholds, regularised (step 3 of `indexer.calibration`): a route gets its own
threshold only with enough support, its offset shrunk toward the global threshold, and the
whole step is kept only when it gains on held-out halves of the file."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from indexer.calibration_grid import CalibrationGrid
from indexer.calibration_objective import halves
from router_core.engine import predict
from router_core.neighbours import FloatArray, IntArray, NeighbourArrays
from router_core.params import DecisionParams


@dataclass(frozen=True)
class RouteThreshold:
    """What calibration found for one route's own threshold."""

    route: str
    support: int
    best_offset: float
    offset: float  # after shrinkage; 0 means the route keeps the global threshold
    gain: float  # weighted queries gained on validation by the kept offset


def fit_route_thresholds(
    arrays: NeighbourArrays,
    gold: IntArray,
    weights: FloatArray,
    params: DecisionParams,
    rows: IntArray,
    grid: CalibrationGrid,
    support_scale: float,
) -> tuple[dict[str, float], tuple[RouteThreshold, ...]]:
    """Coordinate ascent over routes, one pass in name order, with shrinkage."""
    sub = arrays.subset(rows)
    g, w = gold[rows], weights[rows]
    k = min(params.k, sub.width)
    thresholds = sub.thresholds(params.threshold)
    current = predict(sub, replace(params, k=k), thresholds)
    support = np.bincount(g[g >= 0], minlength=len(sub.route_names))
    nearby = sub.routes[:, :k]
    chosen: dict[str, float] = {}
    details = []
    for rid, name in enumerate(sub.route_names):
        n = int(support[rid])
        if n < grid.min_route_support * support_scale:
            continue
        affected = np.flatnonzero((nearby == rid).any(axis=1))
        if affected.size == 0:
            continue
        local = sub.subset(affected)
        ga, wa = g[affected], w[affected]
        before = float(wa[current[affected] == ga].sum())

        def gain_at(
            offset: float,
            rid: int = rid,
            local: NeighbourArrays = local,
            ga: IntArray = ga,
            wa: FloatArray = wa,
            before: float = before,
        ) -> tuple[float, IntArray]:
            trial = thresholds.copy()
            trial[rid] = params.threshold + offset
            pred = predict(local, replace(params, k=k), trial)
            return float(wa[pred == ga].sum()) - before, pred

        gains = [(gain_at(o)[0], o) for o in grid.route_offsets]
        best_gain, best_offset = max(gains, key=lambda x: (round(x[0], 9), -abs(x[1])))
        if best_gain <= 0:
            continue
        offset = round(best_offset * n / (n + grid.shrinkage), 2)
        gain, pred = gain_at(offset)
        kept = offset != 0 and gain >= grid.min_route_gain
        details.append(RouteThreshold(name, n, best_offset, offset if kept else 0.0, gain if kept else 0.0))
        if kept:
            thresholds[rid] = params.threshold + offset
            current[affected] = pred
            chosen[name] = round(params.threshold + offset, 4)
    return chosen, tuple(details)


def heldout_gain(
    arrays: NeighbourArrays,
    gold: IntArray,
    weights: FloatArray,
    params: DecisionParams,
    grid: CalibrationGrid,
) -> tuple[float, float]:
    """Objective gain of per-route thresholds on held-out halves (two-fold, stratified by
    label: fit on one half, score the other), with its paired standard error."""
    fold = halves(gold)
    diff = np.zeros(len(gold), dtype=np.float64)
    for held in (0, 1):
        fit_rows = np.flatnonzero(fold != held)
        test_rows = np.flatnonzero(fold == held)
        per_route, _ = fit_route_thresholds(arrays, gold, weights, params, fit_rows, grid, 0.5)
        sub = arrays.subset(test_rows)
        g, w = gold[test_rows], weights[test_rows]
        plain = predict(sub, params, sub.thresholds(params.threshold))
        tuned = predict(sub, params, sub.thresholds(params.threshold, per_route))
        diff[test_rows] = w * ((tuned == g).astype(np.float64) - (plain == g))
    total = float(weights.sum())
    se = float(np.sqrt(len(diff)) * diff.std(ddof=1) / total) if len(diff) > 1 else 0.0
    return float(diff.sum() / total), se
