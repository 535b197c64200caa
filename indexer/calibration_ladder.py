"""The ladder of decision-rule variants (step 2 of `indexer.calibration`): from the plain
majority vote to the richest rule, each family's best setting adopted only when it beats the
setting adopted so far by `min_variant_gain` and `significance` paired standard errors (the
first rule too); when none does, the given parameters stand."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from indexer.calibration_grid import CalibrationGrid
from indexer.calibration_objective import Scorer, Scores, paired_gain
from router_core.engine import predict
from router_core.neighbours import IntArray, NeighbourArrays
from router_core.params import SPECS, DecisionParams

SIMPLE_FIRST = "majority vote + threshold"


@dataclass(frozen=True)
class Trial:
    """One global setting tried (no per-route thresholds), with its scores on validation."""

    params: DecisionParams
    scores: Scores

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the tunable values and the scores."""
        return {**self.params.tunable_values(), "scores": asdict(self.scores)}


@dataclass(frozen=True)
class Variant:
    """The best setting of one decision-rule family, and whether calibration adopted it.

    `gain` is in-sample: the objective on the whole file over the setting adopted before it (the
    given parameters, for the first), with its paired standard error. `heldout_gain` is measured
    on held-out halves of the file (per-route thresholds only; None elsewhere). `verdict` says
    what became of the row: adopted, not adopted (and why), or nothing new found.
    """

    name: str
    params: DecisionParams
    scores: Scores
    adopted: bool
    gain: float = 0.0
    standard_error: float = 0.0
    verdict: str = ""
    new: bool = True  # False: the family's best is a setting already listed above
    heldout_gain: float | None = None
    heldout_standard_error: float | None = None


def _families() -> list[tuple[str, Callable[[Trial], bool]]]:
    """Decision-rule families from simple to rich: the plain majority vote (every parameter that
    has a simple value at it), then each such parameter freed in declaration order."""
    richer = [s for s in SPECS if s.simple is not None]

    def member(freed: int) -> Callable[[Trial], bool]:
        fixed = richer[freed:]
        return lambda t: all(getattr(t.params, s.name) == s.simple for s in fixed)

    return [(SIMPLE_FIRST, member(0))] + [(s.variant, member(i + 1)) for i, s in enumerate(richer)]


def _distance(value: Any, reference: Any) -> float:
    if isinstance(value, int | float) and isinstance(reference, int | float):
        return abs(float(value) - float(reference))
    return float(value != reference)


def _preference(base: DecisionParams) -> Callable[[Trial], tuple[float, ...]]:
    """Higher objective first; among equals the simpler (each richer parameter nearest its
    simple value, in declaration order), then the closer to `base`."""
    richer = [s for s in SPECS if s.simple is not None]
    plain = [s for s in SPECS if s.simple is None]

    def key(t: Trial) -> tuple[float, ...]:
        return (
            -round(t.scores.objective, 9),
            *(_distance(getattr(t.params, s.name), s.simple) for s in richer),
            *(_distance(getattr(t.params, s.name), getattr(base, s.name)) for s in plain),
        )

    return key


def ladder(
    table: Sequence[Trial],
    base: DecisionParams,
    grid: CalibrationGrid,
    arrays: NeighbourArrays,
    scorer: Scorer,
) -> tuple[list[Variant], Trial]:
    """Walk the families from simple to rich; adopt a family's best setting only when it beats
    the setting adopted so far (the given parameters until one is) by min_variant_gain and by
    `significance` paired standard errors: the first rule too. When none does, the given
    parameters stand."""
    key = _preference(base)
    variants: list[Variant] = []
    reference = predict_params(arrays, base)
    chosen = Trial(base, scorer(reference))
    # Tunable values of each setting listed, and its row; the given parameters first (when they
    # are a global setting: with per-route thresholds they decide otherwise).
    listed: dict[tuple[Any, ...], str] = {}
    if not base.route_thresholds:
        listed[tuple(base.tunable_values().values())] = "given parameters"
    previous = 0
    for name, member in _families():
        family = [t for t in table if member(t)]
        if not family or len(family) == previous:
            continue
        previous = len(family)
        best = min(family, key=key)
        params = replace(best.params, default_route=base.default_route)
        values = tuple(params.tunable_values().values())
        if best is chosen or values in listed:
            verdict = "nothing better" if best is chosen else f"same as {listed[values]!r}"
            variants.append(Variant(name, params, best.scores, False, verdict=verdict, new=False))
            continue
        pred = _predict(arrays, best)
        gain, se = paired_gain(pred, reference, scorer)
        adopt = gain >= grid.min_variant_gain and gain >= grid.significance * se
        if adopt:
            verdict = "adopted"
            chosen, reference = best, pred
        else:
            verdict = "not adopted: within noise" if gain > 0 else "not adopted: no gain"
        listed[values] = name
        variants.append(Variant(name, params, best.scores, adopt, gain, se, verdict=verdict))
    if not table:
        raise ValueError("the calibration grid is empty")
    return variants, chosen


def _predict(arrays: NeighbourArrays, t: Trial) -> IntArray:
    return predict_params(arrays, t.params)


def predict_params(arrays: NeighbourArrays, params: DecisionParams) -> IntArray:
    return predict(arrays, params, arrays.thresholds(params.threshold, params.route_thresholds))
