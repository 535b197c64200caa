"""Admin endpoints: the live index version and an on-demand re-index, per route set (`?set=`;
a re-index without it re-indexes every set the token administers, each on its own)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import QueryParameter

from router_core import ReindexReport, RouterError, public_view
from router_core.settings import SET_NAME_PATTERN
from router_llm.decider import Decider, DeciderStatus
from service.errors import ServiceError, problem_body, router_problem_body
from service.index_admin import IndexAdmin
from service.schemas import problem_responses
from service.served_sets import ServedSets
from service.set_choice import RouteSetForbidden, allowed_sets, credential_of

log = logging.getLogger("router.admin")


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
    route_set: str
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
    """What an admin-triggered re-index of one route set did."""

    route_set: str
    version: str
    previous_version: str | None
    changed: bool
    routes: int
    examples: int
    embedded: int
    reused: int
    seconds: float
    serving: str | None  # the version the set serves now (None: it still cannot serve)


class SetReindexed(msgspec.Struct, omit_defaults=True):
    """One set of a re-index of several: what it did, or the problem that stopped it (the
    other sets are not touched by it)."""

    route_set: str
    ok: bool
    result: ReindexResult | None = None
    problem: dict[str, Any] | None = None


class SetsReindexed(msgspec.Struct):
    """A re-index of every set the token administers, each on its own (207 when any failed)."""

    sets: list[SetReindexed]
    failed: int


class AdminController(Controller):
    """Operator endpoints (admin token required when configured)."""

    path = "/admin"
    tags = ("admin",)

    @get(
        "/index",
        summary="Live index version, route table and build time",
        responses=problem_responses(401, 403, 404, 503),
    )
    async def index_status(
        self, index_admin: NamedDependency[IndexAdmin], decider: NamedDependency[Decider]
    ) -> IndexStatus:
        """What the service is serving right now for the route set (`?set=`, default set)."""
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
            route_set=index_admin.route_set.name,
            model=m.model_id,
            backend=served.embedder.backend,
            index_backend=m.backend or "unrecorded",
            dimension=m.dimension,
            examples=m.points - len(index.table.follow_ups) - len(index.table.replies),
            versions=await index_admin.versions(),
            routes_dir=str(index_admin.route_set.routes_dir),
            route_table=table,
            parity=served.parity.to_dict() if served.parity else None,
            reload_error=index_admin.reload_error,
            reindex_error=index_admin.reindex_error,
            reindex_running=index_admin.reindex_running,
            decision_model=DecisionModelStatus.of(decider.status()),
        )

    @post(
        "/reindex",
        status_code=200,
        summary="Re-index a route set (or every set) from its routes folder",
        responses={
            207: ResponseSpec(SetsReindexed, description="Several sets re-indexed, and at least one failed"),
            **problem_responses(401, 403, 404, 409, 422, 503, 504),
        },
    )
    async def reindex(
        self, request: Request[Any, Any, Any], served_sets: NamedDependency[ServedSets], set_name: SetQuery = None
    ) -> Response[ReindexResult | SetsReindexed]:
        """Validate the set's routes folder, publish a new version if anything changed, switch
        to it (a set that could not serve is served once it can). Without `set`: every set the
        token administers, one after the other; one set's failure touches no other (207, each
        set's outcome or problem in `sets`). A token of a single set gets its result as with `set`."""
        names = [set_name] if set_name is not None else allowed_sets(request)
        if set_name is not None and not credential_of(request).may_use(set_name):
            raise RouteSetForbidden(f"this token may not re-index route set {set_name!r}")
        if len(names) == 1:
            return Response(await _reindex_one(served_sets, names[0]))
        outcomes = []
        for name in names:
            try:
                outcomes.append(SetReindexed(name, True, result=await _reindex_one(served_sets, name)))
            except (ServiceError, RouterError) as exc:
                log.warning("re-index of route set %s failed (the other sets are untouched): %s", name, exc)
                outcomes.append(SetReindexed(name, False, problem=_problem(exc)))
        failed = sum(not o.ok for o in outcomes)
        return Response(SetsReindexed(outcomes, failed), status_code=207 if failed else 200)


SetQuery = Annotated[
    str | None,
    QueryParameter(name="set", pattern=SET_NAME_PATTERN, description="The route set; without it, every set."),
]


async def _reindex_one(served_sets: ServedSets, name: str) -> ReindexResult:
    """Re-index one set: through its index admin when it serves, else from its routes folder."""
    serving = served_sets.serving.get(name)
    if serving is not None:
        report = await serving.admin.reindex()
    else:
        if served_sets.route_set(name) is None:
            served_sets.get(name)  # 404 for no such set
        report = await served_sets.reindex_broken(name)
    now = served_sets.serving.get(name)
    return _result(name, report, now.admin.current.version if now is not None else None)


def _result(name: str, report: ReindexReport, serving: str | None) -> ReindexResult:
    return ReindexResult(
        route_set=name,
        version=report.version,
        previous_version=report.previous_version,
        changed=report.changed,
        routes=report.routes,
        examples=report.examples,
        embedded=report.embedded,
        reused=report.reused,
        seconds=round(report.seconds, 3),
        serving=serving,
    )


def _problem(exc: ServiceError | RouterError) -> dict[str, Any]:
    return problem_body(exc) if isinstance(exc, ServiceError) else router_problem_body(exc)
