"""What operators do with a route set's index: see what is served, re-index, check readiness."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from router_core import IndexStore, OpenIndex, RouterError, load_routes, run_reindex
from router_core.reindex import ReindexReport
from service.errors import ServiceError
from service.live_index import IndexFollower, check_compatible
from service.metrics import Metrics
from service.route_set import RouteSet


class ReindexBusy(ServiceError):
    """A re-index is already running."""

    status = 409
    title = "Re-index already running"


@dataclass(frozen=True)
class Readiness:
    """Whether the route set can serve, with the checks behind it."""

    ready: bool
    checks: dict[str, Any]


class IndexAdmin:
    """The index side of one route set: its store, the followed version, re-indexing."""

    def __init__(self, route_set: RouteSet, store: IndexStore, follower: IndexFollower, metrics: Metrics) -> None:
        self.route_set = route_set
        self._store = store
        self._follower = follower
        self._metrics = metrics
        self._lock = asyncio.Lock()

    @property
    def current(self) -> OpenIndex:
        """The version being served."""
        return self._follower.current

    @property
    def reload_error(self) -> str | None:
        """Why the last attempt to follow the live pointer failed, if it did."""
        return self._follower.last_error

    async def versions(self) -> list[str]:
        """Every complete version in the store."""
        return await asyncio.get_running_loop().run_in_executor(None, self._store.versions)

    async def readiness(self) -> Readiness:
        """Ready when the model is loaded, the store reachable and the served version built with
        that model."""
        checks: dict[str, Any] = {"model": self._follower.embedder.model_id}
        ok = True
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._store.ping)
            served = self._follower.served
            checks["model"] = served.embedder.model_id
            check_compatible(served.index, served.embedder)
            checks["index_version"] = served.index.version
            checks["index_model"] = served.index.manifest.model_id
        except RouterError as exc:
            ok = False
            checks["error"] = str(exc)
        if self._follower.last_error:
            checks["reload_error"] = self._follower.last_error
        return Readiness(ok, checks)

    async def reindex(self) -> ReindexReport:
        """Validate the routes directory, publish a new version if anything changed and follow
        it; ReindexBusy when one is already running."""
        if self._lock.locked():
            raise ReindexBusy("a re-index is already running; try again when it finishes")
        async with self._lock:
            loop = asyncio.get_running_loop()
            try:
                report = await loop.run_in_executor(None, self._reindex)
            except Exception:
                self._metrics.reindex.labels("failed").inc()
                raise
            self._metrics.reindex.labels("changed" if report.changed else "unchanged").inc()
            await loop.run_in_executor(None, self._follower.refresh)
        return report

    def _reindex(self) -> ReindexReport:
        rs = self.route_set
        return run_reindex(
            load_routes(rs.routes_dir, rs.route_files.policy()),
            self._store,
            self._follower.embedder,
            batch_size=rs.embedding.batch_size,
            keep_versions=rs.index.keep_versions,
        )
