"""What calibration tries: the values of each parameter (declared with it in router_core.params)
and how it regularises rule variants and per-route thresholds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from router_core.params import SPECS, DecisionParams, ParamSpec, steps


@dataclass(frozen=True)
class CalibrationGrid:
    """What calibration tries, and how it regularises per-route thresholds.

    `values` overrides the values tried for some parameters; the others take the grid declared
    with the parameter (`router_core.params`). `fixed_route_thresholds` are per-route
    thresholds every setting keeps (see `holding_threshold`).
    """

    values: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    min_variant_gain: float = 0.001
    significance: float = 2.0
    route_thresholds: bool = True
    route_offsets: tuple[float, ...] = steps(-0.10, 0.10, 0.01)
    min_route_support: int = 10
    shrinkage: float = 10.0
    min_route_gain: float = 1.0
    fixed_route_thresholds: Mapping[str, float] = field(default_factory=dict)
    holds_threshold: bool = False

    def holding_threshold(self, base: DecisionParams) -> CalibrationGrid:
        """This grid with the threshold kept as `base` has it: its global threshold, how it is
        applied (threshold mode) and its per-route thresholds. What calibration does when the
        validation file holds no out-of-scope query: without one, every fallback counts against
        a setting, and the threshold would only ever fall."""
        pinned = {"threshold": (base.threshold,), "threshold_mode": (base.threshold_mode,)}
        return replace(
            self,
            values={**self.values, **pinned},
            route_thresholds=False,
            fixed_route_thresholds=dict(base.route_thresholds),
            holds_threshold=True,
        )

    def values_for(self, spec: ParamSpec) -> tuple[Any, ...]:
        """The values tried for one parameter."""
        return tuple(self.values.get(spec.name, spec.grid))

    @property
    def k_max(self) -> int:
        """The most neighbours any setting uses."""
        return int(max(self.values_for(_spec("k"))))

    @property
    def size(self) -> int:
        """How many global settings the grid holds."""
        size = 1
        for spec in SPECS:
            size *= len(self.values_for(spec))
        return size


def _spec(name: str) -> ParamSpec:
    return next(s for s in SPECS if s.name == name)


DEFAULT_GRID = CalibrationGrid()
