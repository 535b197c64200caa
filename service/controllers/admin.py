"""Admin endpoints: the live index version and an on-demand re-index."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency

from router_core import public_view
from router_llm.decider import Decider, DeciderStatus
from service.index_admin import IndexAdmin


class DecisionModelStatus(msgspec.Struct):
    """The decision model of modes llm and hybrid: where it is (credentials stripped), why it
    cannot be asked (`unavailable`), the structured output it is asked in (`output_mode`:
    json_schema, json_object or plain; null before the first call, or when json_schema is about
    to be tried again), why better modes were dropped and when json_schema is tried again, and
    how its last call went (errors masked)."""

    model: str | None
    endpoint: str | None
    unavailable: str | None
    structured_output: str | None
    output_mode: str | None
    output_mode_confirmed: bool
    output_mode_refused: str | None
    reprobe_in_s: float | None
    last_outcome: str | None
    last_error: str | None
    last_error_age_s: float | None

    @classmethod
    def of(cls, status: DeciderStatus) -> DecisionModelStatus:
        """Wire form of the decider's status."""
        return cls(**status.to_dict())


class IndexStatus(msgspec.Struct):
    """The live index version and what it was built from: `model` and `backend` are what embeds
    queries now, `index_backend` what embedded the version, `parity` how the two compare on the
    version's reference sentences (None: the version records no reference vectors)."""

    version: str
    created_at: str
    model: str
    backend: str
    index_backend: str
    dimension: int
    examples: int
    versions: list[str]
    routes_dir: str
    route_table: dict[str, Any]
    parity: dict[str, Any] | None = None
    reload_error: str | None = None
    reindex_error: str | None = None
    reindex_running: bool = False
    decision_model: DecisionModelStatus | None = None


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


class AdminController(Controller):
    """Operator endpoints (admin token required when configured)."""

    path = "/admin"
    tags = ("admin",)

    @get("/index", summary="Live index version, route table and build time")
    async def index_status(
        self, index_admin: NamedDependency[IndexAdmin], decider: NamedDependency[Decider]
    ) -> IndexStatus:
        """What the service is serving right now."""
        served = index_admin.served
        index = served.index
        m = index.manifest
        table = dict(m.route_table)
        table["default_agent"] = public_view(index.table.default_agent)
        table["routes"] = [
            {**{k: v for k, v in r.items() if k != "agent"}, "agent": public_view(index.table.agent_for(r["name"]))}
            for r in m.route_table.get("routes", [])
        ]
        return IndexStatus(
            version=m.version,
            created_at=m.created_at,
            model=m.model_id,
            backend=served.embedder.backend,
            index_backend=m.backend or "unrecorded",
            dimension=m.dimension,
            examples=m.points,
            versions=await index_admin.versions(),
            routes_dir=str(index_admin.route_set.routes_dir),
            route_table=table,
            parity=served.parity.to_dict() if served.parity else None,
            reload_error=index_admin.reload_error,
            reindex_error=index_admin.reindex_error,
            reindex_running=index_admin.reindex_running,
            decision_model=DecisionModelStatus.of(decider.status()),
        )

    @post("/reindex", status_code=200, summary="Re-index from the service's routes directory")
    async def reindex(self, index_admin: NamedDependency[IndexAdmin]) -> ReindexResult:
        """Validate the routes directory, publish a new version if anything changed, switch to it."""
        report = await index_admin.reindex()
        return ReindexResult(
            version=report.version,
            previous_version=report.previous_version,
            changed=report.changed,
            routes=report.routes,
            examples=report.examples,
            embedded=report.embedded,
            reused=report.reused,
            seconds=round(report.seconds, 3),
            serving=index_admin.current.version,
        )
