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
   tie-break in the grid is scored on precomputed neighbours (the vectorised engine,
   `router_core.engine`; the parameters and their grids are declared in `router_core.params`).
2. Decision-rule variants are adopted in order, each only when its best setting beats the
   setting adopted so far (the given parameters until one is: the first rule passes the same
   test) by at least `min_variant_gain` and by `significance` paired standard errors on the
   validation queries (so noise in a small out-of-scope sample does not add parameters, and
   parameters that gain nothing replace none): majority vote with a threshold (tuned k and
   threshold), then the threshold applied to the winner's best similarity instead of to each
   neighbour (threshold mode "winner"), then similarity-weighted votes, then tie-break by best
   similarity, then a margin (ambiguity band).
3. Per-route thresholds, regularised: a route gets its own threshold only when validation holds
   at least `min_route_support` queries labelled with it; its best offset from the global
   threshold is shrunk toward 0 by n / (n + shrinkage) and kept only when the shrunk offset
   still gains at least `min_route_gain` weighted queries. The whole step is then checked by
   two-fold cross-validation on the validation file (fit on one half, score on the other) and
   dropped unless its held-out gain passes the same test as a variant (at least
   `min_variant_gain` and `significance` standard errors).
4. The chosen setting is re-scored with the decisions the service makes (`decide_many`).
5. Optionally (`estimate_heldout`, what `python -m indexer calibrate` reports first), steps 1-3
   run again on each half of the file and are scored on the other half against the given
   parameters: the gain to expect on queries calibration has not seen. The gains of steps 2 and
   3 above are measured on the file the settings were picked on (in-sample), which flatters them.

Fallback precision is reported at the declared out-of-scope share (reweighted like the
objective) and on the file's own mix.

A file with no out-of-scope query cannot say what rejecting is worth: every fallback counts
against a setting, so the search would lower the threshold until almost nothing falls back.
`hold_threshold` (what `calibrate` does then, unless told `--no-off-topic`) keeps the given
threshold, its mode and the per-route thresholds, and searches the rest.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from indexer.calibration_grid import DEFAULT_GRID, CalibrationGrid
from indexer.calibration_ladder import Trial, Variant, ladder
from indexer.calibration_objective import Scorer, Scores, halves, oos_weight_for
from indexer.defaults import DEFAULT_OOS_SHARE
from indexer.labelled import gold_ids, is_fallback_label
from indexer.progress import NoSteps, Steps
from indexer.route_thresholds import RouteThreshold, fit_route_thresholds, heldout_gain
from router_core import Neighbour
from router_core.decision import decide_many
from router_core.engine import FALLBACK, predict, vote
from router_core.neighbours import NeighbourArrays
from router_core.params import SPECS, DecisionParams

__all__ = [
    "DEFAULT_GRID",
    "CalibrationGrid",
    "CalibrationResult",
    "RouteThreshold",
    "Scores",
    "Trial",
    "Variant",
    "calibrate",
    "oos_weight_for",
]


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
    engine_mismatches: int = 0  # queries where the calibration search and decide_many disagreed
    # The whole calibration's gain over the given parameters on held-out halves (calibrated on
    # one half, scored on the other, both ways); None when not estimated.
    heldout_total_gain: float | None = None
    heldout_total_standard_error: float | None = None
    threshold_held: bool = False  # the given threshold was kept (no out-of-scope query to set it)

    @property
    def gain(self) -> float:
        """The objective gained over the given parameters on the whole file (in-sample)."""
        return self.objective - self.baseline.objective

    @property
    def changed(self) -> bool:
        """Whether anything beat the given parameters (else they stand, and nothing is written)."""
        return any(v.adopted for v in self.variants)

    def to_dict(self, *, table_rows: int | None = None) -> dict[str, Any]:
        """JSON-ready form; `table_rows` keeps only the best rows of the table."""
        data = asdict(self)
        data["params"] = self.params.to_dict()
        data["variants"] = [{**asdict(v), "params": v.params.to_dict()} for v in self.variants]
        rows = sorted(self.table, key=lambda t: -t.scores.objective)
        data["table"] = [t.to_dict() for t in (rows if table_rows is None else rows[:table_rows])]
        data["table_size"] = len(self.table)
        return data


def calibrate(
    neighbours: Sequence[Sequence[Neighbour]],
    labels: Sequence[str],
    base: DecisionParams,
    *,
    oos_weight: float | None = None,
    oos_share: float = DEFAULT_OOS_SHARE,
    grid: CalibrationGrid = DEFAULT_GRID,
    routes: Sequence[str] = (),
    estimate_heldout: bool = False,
    hold_threshold: bool = False,
    progress: Steps | None = None,
) -> CalibrationResult:
    """Search decision parameters on precomputed neighbours (fetched with k >= grid.k_max).

    `oos_weight` weighs each out-of-scope query directly; when None it follows `oos_share`
    (see the module docstring). `base` supplies the default route and the baseline row.
    `estimate_heldout` also runs the whole search on each half of the file and scores it on the
    other half: an estimate of the gain on queries calibration has not seen (about twice the
    time). `hold_threshold` keeps the threshold of `base` (global, mode and per route) and
    searches the rest: what to do when `labels` hold no out-of-scope query.
    """
    if hold_threshold:
        grid = grid.holding_threshold(base)
    if len(neighbours) != len(labels):
        raise ValueError(f"{len(neighbours)} neighbour lists for {len(labels)} labels")
    if not labels:
        raise ValueError("no labelled queries to calibrate on")
    steps = progress or NoSteps()
    arrays = NeighbourArrays.build(neighbours, [*routes, *_route_labels(labels, base)])
    gold = gold_ids(arrays, labels, base.default_route)
    oos = gold == FALLBACK
    n_oos = int(oos.sum())
    weight = oos_weight if oos_weight is not None else oos_weight_for(len(gold) - n_oos, n_oos, oos_share)
    if weight <= 0:
        raise ValueError(f"oos weight must be positive, not {weight}")
    weights = np.where(oos, weight, 1.0)
    scorer = Scorer(gold, weights)

    fit = _fit(arrays, scorer, base, grid, steps, "search")
    total_gain = total_se = None
    if estimate_heldout:
        total_gain, total_se = _heldout_total_gain(arrays, scorer, base, grid, steps)
    final, mismatches = _decide_scores(neighbours, fit.params, arrays, scorer)
    baseline, _ = _decide_scores(neighbours, base, arrays, scorer)
    variants = [Variant("given parameters", base, baseline, False, verdict="the baseline", new=True)]
    variants += fit.variants
    if grid.route_thresholds:
        variants.append(_route_threshold_row(fit, final, base))
    return CalibrationResult(
        params=fit.params,
        objective=final.objective,
        scores=final,
        baseline=baseline,
        oos_weight=float(weight),
        oos_share=float(weights[oos].sum() / weights.sum()) if len(gold) else 0.0,
        queries=len(gold),
        out_of_scope=n_oos,
        variants=tuple(variants),
        route_thresholds=fit.route_details,
        route_thresholds_kept=fit.kept,
        heldout_gain=fit.heldout,
        heldout_standard_error=fit.heldout_se,
        table=tuple(fit.table),
        engine_mismatches=mismatches,
        heldout_total_gain=total_gain,
        heldout_total_standard_error=total_se,
        threshold_held=grid.holds_threshold,
    )


@dataclass(frozen=True)
class _Fitted:
    """What one search found: the table, the ladder, the chosen setting and per-route step."""

    table: list[Trial]
    variants: list[Variant]
    chosen: Trial  # the adopted global setting, before per-route thresholds
    params: DecisionParams  # the chosen setting with its per-route thresholds
    route_details: tuple[RouteThreshold, ...]
    kept: bool
    heldout: float
    heldout_se: float


def _fit(
    arrays: NeighbourArrays,
    scorer: Scorer,
    base: DecisionParams,
    grid: CalibrationGrid,
    steps: Steps,
    label: str,
) -> _Fitted:
    """Search the grid, walk the ladder of variants, then try per-route thresholds."""
    table = _search(arrays, scorer, grid, steps, label)
    variants, chosen = ladder(table, base, grid, arrays, scorer)
    params = replace(chosen.params, default_route=base.default_route)
    details: tuple[RouteThreshold, ...] = ()
    kept = False
    heldout = heldout_se = 0.0
    if grid.route_thresholds:
        heldout, heldout_se = heldout_gain(arrays, scorer.gold, scorer.weights, params, grid)
        if heldout >= grid.min_variant_gain and heldout >= grid.significance * heldout_se:
            per_route, details = fit_route_thresholds(
                arrays, scorer.gold, scorer.weights, params, np.arange(len(scorer.gold)), grid, 1.0
            )
            kept = bool(per_route)
            params = replace(params, route_thresholds=per_route)
    return _Fitted(table, variants, chosen, params, details, kept, heldout, heldout_se)


def _route_threshold_row(fit: _Fitted, final: Scores, base: DecisionParams) -> Variant:
    """The per-route thresholds row: its held-out gain decides; the in-sample one is shown too."""
    if fit.kept:
        gain = final.objective - fit.chosen.scores.objective
        verdict = "kept"
    else:
        gain = 0.0
        verdict = "not kept: within noise" if fit.heldout > 0 else "not kept: no held-out gain"
    return Variant(
        "+ per-route thresholds",
        fit.params if fit.kept else replace(fit.chosen.params, default_route=base.default_route),
        final,
        fit.kept,
        gain,
        0.0,
        verdict=verdict,
        new=fit.kept,
        heldout_gain=fit.heldout,
        heldout_standard_error=fit.heldout_se,
    )


def _heldout_total_gain(
    arrays: NeighbourArrays, scorer: Scorer, base: DecisionParams, grid: CalibrationGrid, steps: Steps
) -> tuple[float, float]:
    """The whole calibration's gain over `base` on queries it did not see: calibrate on one half,
    score the other against the given parameters, both ways; with its paired standard error."""
    fold = halves(scorer.gold)
    diff = np.zeros(len(scorer.gold), dtype=np.float64)
    for held in (0, 1):
        fit_rows, test_rows = np.flatnonzero(fold != held), np.flatnonzero(fold == held)
        fit_scorer = Scorer(scorer.gold[fit_rows], scorer.weights[fit_rows])
        fitted = _fit(arrays.subset(fit_rows), fit_scorer, base, grid, steps, f"held-out check, half {held + 1} of 2")
        sub = arrays.subset(test_rows)
        g, w = scorer.gold[test_rows], scorer.weights[test_rows]
        tuned = predict(sub, fitted.params, sub.thresholds(fitted.params.threshold, fitted.params.route_thresholds))
        given = predict(sub, base, sub.thresholds(base.threshold, base.route_thresholds))
        diff[test_rows] = w * ((tuned == g).astype(np.float64) - (given == g))
    se = float(np.sqrt(len(diff)) * diff.std(ddof=1) / scorer.total) if len(diff) > 1 else 0.0
    return float(diff.sum() / scorer.total), se


def _route_labels(labels: Sequence[str], base: DecisionParams) -> set[str]:
    return {label for label in labels if not is_fallback_label(label, base.default_route)}


def _search(
    arrays: NeighbourArrays,
    scorer: Scorer,
    grid: CalibrationGrid,
    steps: Steps | None = None,
    label: str = "searching",
) -> list[Trial]:
    """Score every setting of the grid: one tally per setting of the parameters that shape the
    vote, then every value of those applied after it (the margin), vectorised."""
    voting = [s for s in SPECS if not s.after_vote]
    after = [s for s in SPECS if s.after_vote]
    combos = list(itertools.product(*(grid.values_for(s) for s in voting)))
    tick = steps or NoSteps()
    tick.stage(f"{label}: settings scored", grid.size)
    table: list[Trial] = []
    fixed = dict(grid.fixed_route_thresholds)
    for combo in combos:
        params = DecisionParams(**{s.name: v for s, v in zip(voting, combo, strict=True)}, route_thresholds=fixed)
        tally = vote(arrays, params, arrays.thresholds(params.threshold, fixed))
        finishes = [
            replace(params, **{s.name: v for s, v in zip(after, rest, strict=True)})
            for rest in itertools.product(*(grid.values_for(s) for s in after))
        ]
        preds = np.stack([tally.predictions(p.margin) for p in finishes])
        table.extend(Trial(p, scores) for p, scores in zip(finishes, scorer.many(preds), strict=True))
        tick.advance(len(finishes))
    return table


def _decide_scores(
    neighbours: Sequence[Sequence[Neighbour]],
    params: DecisionParams,
    arrays: NeighbourArrays,
    scorer: Scorer,
) -> tuple[Scores, int]:
    """Scores of the decisions the service would make (`decide_many`), and how many queries the
    search's shortcut (route ids over shared arrays) saw differently: 0 expected."""
    unknown = -3
    exact = np.array(
        [
            FALLBACK if d.fallback else (rid if (rid := arrays.route_id(d.route)) is not None else unknown)
            for d in decide_many(neighbours, params)
        ],
        dtype=np.int64,
    )
    fast = predict(arrays, params)
    return scorer(exact), int((exact != fast).sum())
