"""Calibrate the routing decision on labelled validation queries.

Objective (what `calibrate` maximises)
--------------------------------------
Weighted accuracy with the fallback as a class of its own:

    objective = sum_i w_i * [decision_i == gold_i] / sum_i w_i

where an in-scope query (labelled with a route) weighs 1 and is right only when it reaches that
route, and an out-of-scope query (labelled `oos` or the default route) weighs `oos_weight` and
is right only when it falls back. By default `oos_weight` is derived from `oos_share`, the
share of out-of-scope traffic the router should be tuned for:

    oos_weight = oos_share / (1 - oos_share) * n_in_scope / n_out_of_scope

so that, whatever the file's own mix, the objective equals
`(1 - oos_share) * in-scope accuracy + oos_share * fallback recall`. Why: a validation file's
mix is an accident of how it was built (CLINC150's val holds 3.2% out-of-scope queries, its test
18.2%); an objective that follows the file's mix learns that rejecting hardly matters and
under-rejects on real traffic. The default share, 0.2, is a deployment assumption: about one
query in five is outside every route (a general assistant's front door), and a wrongly
accepted query (a specialist agent answering off-topic) costs about as much as a wrongly
rejected one (a polite refusal the user can rephrase). Set `--oos-share` to the share seen in
your traffic, or `--oos-weight` to weigh each out-of-scope query directly.

Search
------
1. Every combination of threshold mode, k, global threshold, margin, vote weighting and
   tie-break in the grid is scored on precomputed neighbours (numpy; `indexer.batch_decision`).
2. Decision-rule variants are adopted in order, each only when its best setting beats the
   setting adopted so far by at least `min_variant_gain` and by `significance` paired standard
   errors on the validation queries (so noise in a small out-of-scope sample does not add
   parameters): majority vote with a threshold (tuned k and threshold), then the threshold
   applied to the winner's best similarity instead of to each neighbour (threshold mode
   "winner"), then similarity-weighted
   votes, then tie-break by best similarity, then a margin (ambiguity band).
3. Per-route thresholds, regularised: a route gets its own threshold only when validation holds
   at least `min_route_support` queries labelled with it; its best offset from the global
   threshold is shrunk toward 0 by n / (n + shrinkage) and kept only when the shrunk offset
   still gains at least `min_route_gain` weighted queries. The whole step is then checked by
   two-fold cross-validation on the validation file (fit on one half, score on the other) and
   dropped unless its held-out gain passes the same test as a variant (at least
   `min_variant_gain` and `significance` standard errors).
4. The chosen setting is re-scored with the per-query rule (`router_core.decision.decide`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from indexer.batch_decision import (
    FALLBACK,
    BoolArray,
    FloatArray,
    IntArray,
    NeighbourArrays,
    gold_ids,
    predict,
    vote,
)
from indexer.labelled import is_fallback_label
from router_core.decision import Neighbour, decide
from router_core.routes import DecisionParams, ThresholdMode, TieBreak, VoteWeight

DEFAULT_OOS_SHARE = 0.2


def _steps(start: float, stop: float, step: float) -> tuple[float, ...]:
    count = round((stop - start) / step)
    return tuple(round(start + i * step, 4) for i in range(count + 1))


@dataclass(frozen=True)
class CalibrationGrid:
    """What calibration tries, and how it regularises per-route thresholds."""

    ks: tuple[int, ...] = (1, 3, 5, 7, 10, 15, 20)
    thresholds: tuple[float, ...] = _steps(0.20, 0.80, 0.01)
    margins: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
    votes: tuple[VoteWeight, ...] = ("count", "similarity")
    tie_breaks: tuple[TieBreak, ...] = ("sum", "max")
    threshold_modes: tuple[ThresholdMode, ...] = ("neighbour", "winner")
    min_variant_gain: float = 0.001
    significance: float = 2.0
    route_thresholds: bool = True
    route_offsets: tuple[float, ...] = _steps(-0.10, 0.10, 0.01)
    min_route_support: int = 10
    shrinkage: float = 10.0
    min_route_gain: float = 1.0

    @property
    def k_max(self) -> int:
        """The most neighbours any setting uses."""
        return max(self.ks)

    @property
    def size(self) -> int:
        """How many global settings the grid holds."""
        return (
            len(self.ks)
            * len(self.thresholds)
            * len(self.margins)
            * len(self.votes)
            * len(self.tie_breaks)
            * len(self.threshold_modes)
        )


DEFAULT_GRID = CalibrationGrid()


@dataclass(frozen=True)
class Scores:
    """The objective and the figures behind it, for one setting."""

    objective: float
    accuracy: float
    in_scope_accuracy: float
    fallback_recall: float
    fallback_precision: float


@dataclass(frozen=True)
class Trial:
    """One global setting tried, with its scores on the validation queries."""

    k: int
    threshold: float
    margin: float
    vote: VoteWeight
    tie_break: TieBreak
    threshold_mode: ThresholdMode
    scores: Scores

    def params(self, default_route: str) -> DecisionParams:
        """This setting as decision parameters (no per-route thresholds)."""
        return DecisionParams(
            k=self.k,
            threshold=self.threshold,
            margin=self.margin,
            tie_break=self.tie_break,
            vote=self.vote,
            threshold_mode=self.threshold_mode,
            default_route=default_route,
        )


@dataclass(frozen=True)
class Variant:
    """The best setting of one decision-rule family, and whether calibration adopted it."""

    name: str
    params: DecisionParams
    scores: Scores
    adopted: bool
    gain: float = 0.0  # objective gained over the setting adopted before it
    standard_error: float = 0.0  # of that gain (paired, over the validation queries)


@dataclass(frozen=True)
class RouteThreshold:
    """What calibration found for one route's own threshold."""

    route: str
    support: int
    best_offset: float
    offset: float  # after shrinkage; 0 means the route keeps the global threshold
    gain: float  # weighted queries gained on validation by the kept offset


@dataclass(frozen=True)
class CalibrationResult:
    """The chosen parameters, their objective and everything that was tried."""

    params: DecisionParams
    objective: float
    scores: Scores
    baseline: Scores
    oos_weight: float
    oos_share: float  # the share of out-of-scope weight in the objective
    queries: int
    out_of_scope: int
    variants: tuple[Variant, ...]
    route_thresholds: tuple[RouteThreshold, ...]
    route_thresholds_kept: bool
    heldout_gain: float  # objective gained by per-route thresholds on held-out halves
    heldout_standard_error: float
    table: tuple[Trial, ...] = field(repr=False)
    engine_mismatches: int = 0  # queries where the numpy engine and decide() disagreed

    def to_dict(self, *, table_rows: int | None = None) -> dict[str, Any]:
        """JSON-ready form; `table_rows` keeps only the best rows of the table."""
        data = asdict(self)
        data["params"] = params_dict(self.params)
        data["variants"] = [{**asdict(v), "params": params_dict(v.params)} for v in self.variants]
        rows = sorted(self.table, key=lambda t: -t.scores.objective)
        data["table"] = [asdict(t) for t in (rows if table_rows is None else rows[:table_rows])]
        data["table_size"] = len(self.table)
        return data


def params_dict(p: DecisionParams) -> dict[str, Any]:
    """Decision parameters as JSON."""
    return {
        "k": p.k,
        "threshold": p.threshold,
        "route_thresholds": dict(p.route_thresholds),
        "margin": p.margin,
        "tie_break": p.tie_break,
        "vote": p.vote,
        "threshold_mode": p.threshold_mode,
        "default_route": p.default_route,
    }


def oos_weight_for(in_scope: int, out_of_scope: int, share: float) -> float:
    """The weight per out-of-scope query that makes them `share` of the objective."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"oos share must be between 0 and 1, not {share}")
    if out_of_scope == 0:
        return 1.0
    return share / (1.0 - share) * in_scope / out_of_scope


def calibrate(
    neighbours: Sequence[Sequence[Neighbour]],
    labels: Sequence[str],
    base: DecisionParams,
    *,
    oos_weight: float | None = None,
    oos_share: float = DEFAULT_OOS_SHARE,
    grid: CalibrationGrid = DEFAULT_GRID,
    routes: Sequence[str] = (),
) -> CalibrationResult:
    """Search decision parameters on precomputed neighbours (fetched with k >= grid.k_max).

    `oos_weight` weighs each out-of-scope query directly; when None it follows `oos_share`
    (see the module docstring). `base` supplies the default route and the baseline row.
    """
    if len(neighbours) != len(labels):
        raise ValueError(f"{len(neighbours)} neighbour lists for {len(labels)} labels")
    if not labels:
        raise ValueError("no labelled queries to calibrate on")
    arrays = NeighbourArrays.build(neighbours, [*routes, *_route_labels(labels, base)])
    gold = gold_ids(arrays, labels, base.default_route)
    oos = gold == FALLBACK
    n_oos = int(oos.sum())
    weight = oos_weight if oos_weight is not None else oos_weight_for(len(gold) - n_oos, n_oos, oos_share)
    if weight <= 0:
        raise ValueError(f"oos weight must be positive, not {weight}")
    weights = np.where(oos, weight, 1.0)
    scorer = _Scorer(gold, weights)

    table = _search(arrays, scorer, grid)
    variants, chosen = _ladder(table, base, grid, arrays, scorer)
    params = chosen.params(base.default_route)
    details: tuple[RouteThreshold, ...] = ()
    kept = False
    heldout = heldout_se = 0.0
    if grid.route_thresholds:
        heldout, heldout_se = _heldout_gain(arrays, gold, weights, params, grid)
        if heldout >= grid.min_variant_gain and heldout >= grid.significance * heldout_se:
            per_route, details = _fit_route_thresholds(arrays, gold, weights, params, np.arange(len(gold)), grid, 1.0)
            kept = bool(per_route)
            params = replace(params, route_thresholds=per_route)

    final, mismatches = _decide_scores(neighbours, params, arrays, scorer)
    baseline, _ = _decide_scores(neighbours, base, arrays, scorer)
    variants.insert(0, Variant("given parameters", base, baseline, False))
    if kept:
        gain = final.objective - chosen.scores.objective
        variants.append(Variant("+ per-route thresholds", params, final, True, gain))
    return CalibrationResult(
        params=params,
        objective=final.objective,
        scores=final,
        baseline=baseline,
        oos_weight=float(weight),
        oos_share=float(weights[oos].sum() / weights.sum()) if len(gold) else 0.0,
        queries=len(gold),
        out_of_scope=n_oos,
        variants=tuple(variants),
        route_thresholds=details,
        route_thresholds_kept=kept,
        heldout_gain=heldout,
        heldout_standard_error=heldout_se,
        table=tuple(table),
        engine_mismatches=mismatches,
    )


def _route_labels(labels: Sequence[str], base: DecisionParams) -> set[str]:
    return {label for label in labels if not is_fallback_label(label, base.default_route)}


class _Scorer:
    def __init__(self, gold: IntArray, weights: FloatArray) -> None:
        self.gold = gold
        self.weights = weights
        self.oos = gold == FALLBACK
        self.total = float(weights.sum())

    def __call__(self, pred: IntArray) -> Scores:
        correct = pred == self.gold
        said = pred == FALLBACK
        return Scores(
            objective=float(self.weights[correct].sum() / self.total),
            accuracy=float(correct.mean()),
            in_scope_accuracy=_mean(correct[~self.oos]),
            fallback_recall=_mean(said[self.oos]),
            fallback_precision=_mean(self.oos[said]),
        )

    def many(self, preds: IntArray) -> list[Scores]:
        """Scores of each row of an (M, N) array of predictions, vectorised."""
        correct = preds == self.gold[None, :]
        said = preds == FALLBACK
        n_in, n_oos = int((~self.oos).sum()), int(self.oos.sum())
        objective = correct.astype(np.float64) @ self.weights / self.total
        accuracy = correct.mean(axis=1)
        in_scope = correct[:, ~self.oos].sum(axis=1) / n_in if n_in else np.zeros(len(preds))
        recall = said[:, self.oos].sum(axis=1) / n_oos if n_oos else np.zeros(len(preds))
        said_n = said.sum(axis=1)
        caught = (said & self.oos[None, :]).sum(axis=1)
        precision = np.divide(caught, said_n, out=np.zeros(len(preds)), where=said_n > 0)
        return [
            Scores(float(o), float(a), float(i), float(r), float(q))
            for o, a, i, r, q in zip(objective, accuracy, in_scope, recall, precision, strict=True)
        ]


def _mean(values: BoolArray) -> float:
    return float(values.mean()) if values.size else 0.0


def _search(arrays: NeighbourArrays, scorer: _Scorer, grid: CalibrationGrid) -> list[Trial]:
    table = []
    for mode in grid.threshold_modes:
        for k in grid.ks:
            for vote_weight in grid.votes:
                for tie in grid.tie_breaks:
                    for threshold in grid.thresholds:
                        votes = vote(arrays, k, arrays.thresholds(threshold), vote_weight, tie, mode)
                        preds = np.stack([votes.predictions(m) for m in grid.margins])
                        for margin, scores in zip(grid.margins, scorer.many(preds), strict=True):
                            table.append(Trial(k, threshold, margin, vote_weight, tie, mode, scores))
    return table


_FAMILIES: tuple[tuple[str, Callable[[Trial], bool]], ...] = (
    (
        "majority vote + threshold",
        lambda t: t.threshold_mode == "neighbour" and t.vote == "count" and t.tie_break == "sum" and t.margin == 0,
    ),
    (
        "+ threshold on the winner's best similarity",
        lambda t: t.vote == "count" and t.tie_break == "sum" and t.margin == 0,
    ),
    ("+ similarity-weighted vote", lambda t: t.tie_break == "sum" and t.margin == 0),
    ("+ tie-break by best similarity", lambda t: t.margin == 0),
    ("+ margin (ambiguity band)", lambda _t: True),
)


def _preference(base: DecisionParams) -> Callable[[Trial], tuple[float, ...]]:
    """Higher objective first; among equals the simpler, then the closer to `base`."""

    def key(t: Trial) -> tuple[float, ...]:
        return (
            -round(t.scores.objective, 9),
            t.threshold_mode != "neighbour",
            t.margin,
            t.vote != "count",
            t.tie_break != "sum",
            abs(t.k - base.k),
            abs(t.threshold - base.threshold),
        )

    return key


def _ladder(
    table: Sequence[Trial],
    base: DecisionParams,
    grid: CalibrationGrid,
    arrays: NeighbourArrays,
    scorer: _Scorer,
) -> tuple[list[Variant], Trial]:
    """Walk the families from simple to rich; adopt a family's best setting only when it beats
    the adopted one by min_variant_gain and by `significance` paired standard errors."""
    key = _preference(base)
    variants: list[Variant] = []
    chosen: Trial | None = None
    chosen_pred: IntArray | None = None
    previous = 0
    for name, member in _FAMILIES:
        family = [t for t in table if member(t)]
        if not family or len(family) == previous:
            continue
        previous = len(family)
        best = min(family, key=key)
        pred = _predict(arrays, best)
        gain, se = (0.0, 0.0) if chosen_pred is None else _paired_gain(pred, chosen_pred, scorer)
        adopt = chosen is None or (
            best is not chosen and gain >= grid.min_variant_gain and gain >= grid.significance * se
        )
        if adopt:
            chosen, chosen_pred = best, pred
        variants.append(Variant(name, best.params(base.default_route), best.scores, adopt, gain, se))
    if chosen is None or chosen_pred is None:
        raise ValueError("the calibration grid is empty")
    return variants, chosen


def _predict(arrays: NeighbourArrays, t: Trial) -> IntArray:
    return predict(arrays, t.params(""), arrays.thresholds(t.threshold))


def _paired_gain(new: IntArray, old: IntArray, scorer: _Scorer) -> tuple[float, float]:
    """Objective gain of `new` over `old` and its standard error over the queries."""
    diff = scorer.weights * ((new == scorer.gold).astype(np.float64) - (old == scorer.gold))
    n = len(diff)
    gain = float(diff.sum() / scorer.total)
    se = float(np.sqrt(n) * diff.std(ddof=1) / scorer.total) if n > 1 else 0.0
    return gain, se


def _fit_route_thresholds(
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


def _heldout_gain(
    arrays: NeighbourArrays,
    gold: IntArray,
    weights: FloatArray,
    params: DecisionParams,
    grid: CalibrationGrid,
) -> tuple[float, float]:
    """Objective gain of per-route thresholds on held-out halves (two-fold, stratified by
    label: fit on one half, score the other), with its paired standard error."""
    fold = np.zeros(len(gold), dtype=np.int64)
    seen: dict[int, int] = {}
    for i, label in enumerate(gold.tolist()):
        fold[i] = seen.get(label, 0) % 2
        seen[label] = seen.get(label, 0) + 1
    diff = np.zeros(len(gold), dtype=np.float64)
    for held in (0, 1):
        fit_rows = np.flatnonzero(fold != held)
        test_rows = np.flatnonzero(fold == held)
        per_route, _ = _fit_route_thresholds(arrays, gold, weights, params, fit_rows, grid, 0.5)
        sub = arrays.subset(test_rows)
        g, w = gold[test_rows], weights[test_rows]
        plain = predict(sub, params, sub.thresholds(params.threshold))
        tuned = predict(sub, params, sub.thresholds(params.threshold, per_route))
        diff[test_rows] = w * ((tuned == g).astype(np.float64) - (plain == g))
    total = float(weights.sum())
    se = float(np.sqrt(len(diff)) * diff.std(ddof=1) / total) if len(diff) > 1 else 0.0
    return float(diff.sum() / total), se


def _decide_scores(
    neighbours: Sequence[Sequence[Neighbour]],
    params: DecisionParams,
    arrays: NeighbourArrays,
    scorer: _Scorer,
) -> tuple[Scores, int]:
    """Scores from the per-query rule itself, and how many queries the numpy engine saw
    differently (0 expected)."""
    unknown = -3
    exact = np.array(
        [
            FALLBACK if d.fallback else (arrays.route_id(d.route) if arrays.route_id(d.route) is not None else unknown)
            for d in (decide(n, params) for n in neighbours)
        ],
        dtype=np.int64,
    )
    fast = predict(arrays, params, arrays.thresholds(params.threshold, params.route_thresholds))
    return scorer(exact), int((exact != fast).sum())
