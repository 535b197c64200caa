"""What calibration tries: the values of each parameter (declared with it in router_core.params)
and how it regularises rule variants and per-route thresholds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from router_core.params import SPECS, ParamSpec, steps


@dataclass(frozen=True)
class CalibrationGrid:
    """What calibration tries, and how it regularises per-route thresholds.

    `values` overrides the values tried for some parameters; the others take the grid declared
    with the parameter (`router_core.params`).
    """

    values: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    min_variant_gain: float = 0.001
    significance: float = 2.0
    route_thresholds: bool = True
    route_offsets: tuple[float, ...] = steps(-0.10, 0.10, 0.01)
    min_route_support: int = 10
    shrinkage: float = 10.0
    min_route_gain: float = 1.0

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
