"""Route hygiene: examples that sit closer to another route, near-duplicates across routes,
and routes with too few examples. Works on the stored vectors of an index version."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from indexer.defaults import DEFAULT_DUPLICATE_SIMILARITY, DEFAULT_MIN_EXAMPLES
from router_core.embedding import Vectors
from router_core.manifest import ExamplePoint

_BLOCK = 1024


@dataclass(frozen=True)
class Misplaced:
    """An example nearer to another route than to its own.

    `by` says which test flagged it: its nearest other example belongs to another route
    ("neighbour"), another route's centroid is nearer than its own route's centroid computed
    without it ("centroid"), or both.
    """

    route: str
    text: str
    by: Literal["neighbour", "centroid", "both"]
    nearest_route: str
    nearest_text: str
    nearest_similarity: float
    own_centroid_similarity: float | None
    other_centroid: str
    other_centroid_similarity: float


@dataclass(frozen=True)
class NearDuplicate:
    """Two examples of different routes that are almost the same utterance."""

    similarity: float
    route_a: str
    text_a: str
    route_b: str
    text_b: str


@dataclass(frozen=True)
class HygieneReport:
    """Everything `hygiene` found."""

    routes: int
    examples: int
    duplicate_similarity: float
    min_examples: int
    misplaced: tuple[Misplaced, ...]
    near_duplicates: tuple[NearDuplicate, ...]
    small_routes: tuple[tuple[str, int], ...]

    def misplaced_by_route(self) -> dict[str, int]:
        """How many misplaced examples each route has, most first."""
        counts: dict[str, int] = {}
        for m in self.misplaced:
            counts[m.route] = counts.get(m.route, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["small_routes"] = [{"route": r, "examples": n} for r, n in self.small_routes]
        data["misplaced_by_route"] = self.misplaced_by_route()
        return data


def check_hygiene(
    points: Sequence[ExamplePoint],
    vectors: Vectors,
    *,
    duplicate_similarity: float = DEFAULT_DUPLICATE_SIMILARITY,
    min_examples: int = DEFAULT_MIN_EXAMPLES,
) -> HygieneReport:
    """Check the examples of an index version (unit vectors, row i belongs to points[i])."""
    if len(points) != len(vectors):
        raise ValueError(f"{len(points)} points for {len(vectors)} vectors")
    names = sorted({p.route for p in points})
    ids = {name: i for i, name in enumerate(names)}
    route_of = np.array([ids[p.route] for p in points], dtype=np.int64)
    v = np.asarray(vectors, dtype=np.float32)
    counts = np.bincount(route_of, minlength=len(names))
    small = tuple(
        sorted(
            ((names[i], int(c)) for i, c in enumerate(counts) if c < min_examples),
            key=lambda x: (x[1], x[0]),
        )
    )
    if len(points) == 0:
        return HygieneReport(0, 0, duplicate_similarity, min_examples, (), (), small)

    sums = np.zeros((len(names), v.shape[1]), dtype=np.float64)
    np.add.at(sums, route_of, v.astype(np.float64))
    centroids = _unit(sums)
    nearest = np.full(len(points), -1, dtype=np.int64)
    nearest_sim = np.full(len(points), -np.inf, dtype=np.float32)
    duplicates: list[NearDuplicate] = []
    for start in range(0, len(points), _BLOCK):
        block = v[start : start + _BLOCK] @ v.T
        rows = np.arange(block.shape[0])
        block[rows, start + rows] = -np.inf
        best = block.argmax(axis=1)
        nearest[start : start + len(rows)] = best
        nearest_sim[start : start + len(rows)] = block[rows, best]
        close_r, close_c = np.nonzero(block >= duplicate_similarity)
        for r, c in zip(close_r.tolist(), close_c.tolist(), strict=True):
            i = start + r
            if i < c and route_of[i] != route_of[c]:
                a, b = sorted((points[i], points[c]), key=lambda q: (q.route, q.text))
                duplicates.append(NearDuplicate(float(block[r, c]), a.route, a.text, b.route, b.text))

    to_centroids = v.astype(np.float64) @ centroids.T
    misplaced = []
    for i, p in enumerate(points):
        own = route_of[i]
        rest = sums[own] - v[i]
        own_sim = None
        if counts[own] > 1 and np.linalg.norm(rest) > 0:
            own_sim = float(v[i] @ rest / np.linalg.norm(rest))
        others = to_centroids[i].copy()
        others[own] = -np.inf
        other = int(others.argmax()) if len(names) > 1 else own
        other_sim = float(others[other]) if len(names) > 1 else -1.0
        j = int(nearest[i])
        by_neighbour = j >= 0 and route_of[j] != own
        by_centroid = own_sim is not None and len(names) > 1 and other_sim > own_sim
        if not (by_neighbour or by_centroid):
            continue
        by: Literal["neighbour", "centroid", "both"] = (
            "both" if by_neighbour and by_centroid else "neighbour" if by_neighbour else "centroid"
        )
        misplaced.append(
            Misplaced(
                route=p.route,
                text=p.text,
                by=by,
                nearest_route=points[j].route if j >= 0 else "",
                nearest_text=points[j].text if j >= 0 else "",
                nearest_similarity=float(nearest_sim[i]) if j >= 0 else 0.0,
                own_centroid_similarity=own_sim,
                other_centroid=names[other],
                other_centroid_similarity=other_sim,
            )
        )
    order = {"both": 0, "centroid": 1, "neighbour": 2}
    misplaced.sort(
        key=lambda m: (
            order[m.by],
            -(m.other_centroid_similarity - (m.own_centroid_similarity or 0.0)),
            m.route,
            m.text,
        )
    )
    duplicates.sort(key=lambda d: (-d.similarity, d.route_a, d.text_a))
    return HygieneReport(
        routes=len(names),
        examples=len(points),
        duplicate_similarity=duplicate_similarity,
        min_examples=min_examples,
        misplaced=tuple(misplaced),
        near_duplicates=tuple(duplicates),
        small_routes=small,
    )


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(np.divide(x, norms, out=np.zeros_like(x), where=norms > 0))
