"""Admin endpoints: the live index version and an on-demand re-index."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency

from router_core import load_routes, public_view, run_reindex
from service.errors import ServiceError
from service.runtime import Runtime


class IndexStatus(msgspec.Struct):
    """The live index version and what it was built from."""

    version: str
    created_at: str
    model: str
    dimension: int
    examples: int
    versions: list[str]
    routes_dir: str
    route_table: dict[str, Any]
    reload_error: str | None = None


class ReindexResult(msgspec.Struct):
    """What an admin-triggered re-index did."""

    version: str
    previous_version: str | None
    changed: bool
    routes: int
    examples: int
    embedded: int
    reused: int
    seconds: float
    serving: str


class ReindexBusy(ServiceError):
    """A re-index is already running."""

    status = 409
    title = "Re-index already running"


class AdminController(Controller):
    """Operator endpoints (admin token required when configured)."""

    path = "/admin"
    tags = ("admin",)

    @get("/index", summary="Live index version, route table and build time")
    async def index_status(self, runtime: NamedDependency[Runtime]) -> IndexStatus:
        """What the service is serving right now."""
        index = runtime.follower.current
        m = index.manifest
        table = dict(m.route_table)
        table["default_agent"] = public_view(index.table.default_agent)
        table["routes"] = [
            {**{k: v for k, v in r.items() if k != "agent"}, "agent": public_view(index.table.agent_for(r["name"]))}
            for r in m.route_table.get("routes", [])
        ]
        versions = await asyncio.get_running_loop().run_in_executor(None, runtime.store.versions)
        return IndexStatus(
            version=m.version,
            created_at=m.created_at,
            model=m.model_id,
            dimension=m.dimension,
            examples=m.points,
            versions=versions,
            routes_dir=str(runtime.settings.routes_dir),
            route_table=table,
            reload_error=runtime.follower.last_error,
        )

    @post("/reindex", status_code=200, summary="Re-index from the service's routes directory")
    async def reindex(self, runtime: NamedDependency[Runtime]) -> ReindexResult:
        """Validate the routes directory, publish a new version if anything changed, switch to it."""
        if runtime.reindex_lock.locked():
            raise ReindexBusy("a re-index is already running; try again when it finishes")
        async with runtime.reindex_lock:
            loop = asyncio.get_running_loop()
            try:
                report = await loop.run_in_executor(None, _reindex, runtime)
            except Exception:
                runtime.metrics.reindex.labels("failed").inc()
                raise
            runtime.metrics.reindex.labels("changed" if report.changed else "unchanged").inc()
            await loop.run_in_executor(None, runtime.follower.refresh)
        return ReindexResult(
            version=report.version,
            previous_version=report.previous_version,
            changed=report.changed,
            routes=report.routes,
            examples=report.examples,
            embedded=report.embedded,
            reused=report.reused,
            seconds=round(report.seconds, 3),
            serving=runtime.follower.current.version,
        )


def _reindex(runtime: Runtime):  # type: ignore[no-untyped-def]
    s = runtime.settings
    return run_reindex(
        load_routes(s.routes_dir),
        runtime.store,
        runtime.embedder,
        batch_size=s.embedding.batch_size,
        keep_versions=s.index.keep_versions,
    )
