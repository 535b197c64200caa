"""Nearest neighbours of queries: one hit as a value, many queries' hits as arrays."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Neighbour:
    """One stored example near the query."""

    text: str
    route: str
    similarity: float


def ordered(row: Iterable[Neighbour]) -> tuple[Neighbour, ...]:
    """Most similar first; ties by route, then text, so input order never matters."""
    return tuple(sorted(row, key=lambda n: (-n.similarity, n.route, n.text)))


@dataclass(frozen=True)
class NeighbourArrays:
    """Neighbours of N queries as (N, W) arrays, each row in `ordered` order.

    Route ids index `route_names`, which is sorted, so a smaller id is the alphabetically first
    route (the vote's last tie-break). Missing neighbours have similarity -inf and the padding
    id len(route_names). `rows` keeps the ordered neighbours themselves when built from them.
    """

    similarities: FloatArray
    routes: IntArray
    route_names: tuple[str, ...]
    rows: tuple[tuple[Neighbour, ...], ...] = field(default=(), compare=False, repr=False)
    _eq: dict[int, FloatArray] = field(default_factory=dict, compare=False, repr=False)
    _ids: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, neighbours: Sequence[Iterable[Neighbour]], extra_routes: Iterable[str] = ()) -> NeighbourArrays:
        """Arrays for `neighbours`; `extra_routes` get ids even when no neighbour has them."""
        rows = tuple(ordered(row) for row in neighbours)
        names = tuple(sorted({n.route for row in rows for n in row} | set(extra_routes)))
        ids = {name: i for i, name in enumerate(names)}
        width = max((len(row) for row in rows), default=0)
        sims = np.full((len(rows), width), -np.inf, dtype=np.float64)
        routes = np.full((len(rows), width), len(names), dtype=np.int64)
        for q, row in enumerate(rows):
            for j, n in enumerate(row):
                sims[q, j] = n.similarity
                routes[q, j] = ids[n.route]
        return cls(sims, routes, names, rows)

    def __len__(self) -> int:
        return int(self.similarities.shape[0])

    @property
    def width(self) -> int:
        """The most neighbours stored per query (the largest usable k)."""
        return int(self.similarities.shape[1])

    def route_id(self, name: str) -> int | None:
        """The id of a route name, or None."""
        if not self._ids and self.route_names:
            self._ids.update({r: i for i, r in enumerate(self.route_names)})
        return self._ids.get(name)

    def subset(self, rows: IntArray) -> NeighbourArrays:
        """The same arrays restricted to some queries."""
        kept = tuple(self.rows[i] for i in rows.tolist()) if self.rows else ()
        return NeighbourArrays(self.similarities[rows], self.routes[rows], self.route_names, kept)

    def same_route(self, k: int) -> FloatArray:
        """(N, k, k): 1.0 where neighbours i and j of a query belong to the same route."""
        if k not in self._eq:
            r = self.routes[:, :k]
            self._eq[k] = (r[:, :, None] == r[:, None, :]).astype(np.float64)
        return self._eq[k]

    def thresholds(self, default: float, per_route: Mapping[str, float] | None = None) -> FloatArray:
        """The threshold of each route id (+inf for the padding id)."""
        values = np.full(len(self.route_names) + 1, default, dtype=np.float64)
        values[-1] = np.inf
        for name, value in (per_route or {}).items():
            rid = self.route_id(name)
            if rid is not None:
                values[rid] = value
        return values
