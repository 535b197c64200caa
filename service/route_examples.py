"""A route's examples with the live hygiene check: for each example, its nearest example of
another route when that one is closer than the nearest example of its own route.

Computed from the stored vectors of the version being served (never re-embedded), which are
read once per version and kept until the service follows another one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from router_core import IndexStore
from router_core.manifest import ExamplePoint
from router_core.store import StoredPoints
from service.errors import ServiceError
from service.live_index import IndexFollower


class RouteNotFound(ServiceError):
    """The route is not in the served index version."""

    status = 404
    title = "Route not found"


@dataclass(frozen=True)
class Nearer:
    """An example of another route, and its cosine similarity to the example it is near."""

    route: str
    text: str
    similarity: float


@dataclass(frozen=True)
class ExampleCheck:
    """One example of a route: its nearest own-route example's similarity (None when it is the
    route's only example) and, when closer than that, the nearest example of another route."""

    text: str
    own_similarity: float | None
    nearer: Nearer | None


def check_route(points: Sequence[ExamplePoint], vectors: npt.NDArray[np.float32], route: str) -> list[ExampleCheck]:
    """The examples of `route` (rows of unit `vectors`, row i belongs to points[i]), in stored
    order, each with the nearest example of another route when nearer than its own route's."""
    rows = [i for i, p in enumerate(points) if p.route == route]
    if not rows:
        return []
    own = np.array([p.route == route for p in points])
    sims = vectors[rows] @ vectors.T  # (examples of the route, all examples)
    sims[np.arange(len(rows)), rows] = -np.inf  # an example is not its own neighbour
    own_sims = np.where(own, sims, -np.inf)
    other_sims = np.where(own, -np.inf, sims)
    best_own = own_sims.max(axis=1)
    best_other = other_sims.argmax(axis=1) if (~own).any() else np.full(len(rows), -1)
    out = []
    for r, i in enumerate(rows):
        own_sim = float(best_own[r]) if np.isfinite(best_own[r]) else None
        nearer = None
        j = int(best_other[r])
        if j >= 0:
            other_sim = float(sims[r, j])
            if own_sim is None or other_sim > own_sim:
                nearer = Nearer(points[j].route, points[j].text, other_sim)
        out.append(ExampleCheck(points[i].text, own_sim, nearer))
    return out


@dataclass(frozen=True)
class RouteExampleList:
    """The checked examples of one route and the version they come from."""

    index_version: str
    route: str
    examples: list[ExampleCheck]


class RouteExamples:
    """Serves route examples from the stored points of the served version (one cached)."""

    def __init__(self, store: IndexStore, follower: IndexFollower) -> None:
        self._store = store
        self._follower = follower
        self._lock = threading.Lock()
        self._cached: tuple[str, StoredPoints] | None = None

    def _stored(self, version: str) -> StoredPoints:
        with self._lock:  # one read per version, even when several requests ask at once
            if self._cached is None or self._cached[0] != version:
                self._cached = (version, self._store.stored_points(version).examples())
            return self._cached[1]

    def _check(self, route: str) -> RouteExampleList:
        with self._follower.lease() as served:  # the version stays on disk while it is read
            index = served.index
            names = {r.name for r in index.table.routes}
            if route not in names:
                raise RouteNotFound(
                    f"no route named {route!r} in index version {index.version}",
                    route=route,
                    routes=sorted(names),
                )
            stored = self._stored(index.version)
        vectors = np.asarray(stored.vectors, dtype=np.float32)
        return RouteExampleList(index.version, route, check_route(stored.points, vectors, route))

    async def examples(self, route: str) -> RouteExampleList:
        """The checked examples of `route` in the served version, on a worker thread (reading
        and multiplying the vectors is disk and CPU work); RouteNotFound for an unknown route."""
        return await asyncio.get_running_loop().run_in_executor(None, self._check, route)
