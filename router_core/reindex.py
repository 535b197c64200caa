"""Re-indexing: diff the routes against the live version, embed only what changed, publish
a new version, switch the live pointer atomically, then drop old versions.

Shared by the indexer CLI and the service's admin endpoint. Any failure before the switch
leaves the live version exactly as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from router_core.embedding import Embedder
from router_core.embedding.parity import (
    APPROXIMATE_BACKENDS,
    ParityResult,
    Reference,
    approximate_mismatch,
    check_parity,
    record_reference,
)
from router_core.errors import IndexMissing, RouterError
from router_core.manifest import (
    ExamplePoint,
    IndexManifest,
    example_points,
    fingerprint,
    new_version_id,
)
from router_core.routes import RouteTable
from router_core.store.protocol import IndexStore, StoredPoints

log = logging.getLogger("router.reindex")


@dataclass(frozen=True)
class RouteChange:
    """How one route differs from the live version."""

    route: str
    change: Literal["added", "removed", "changed"]
    examples_added: tuple[str, ...] = ()
    examples_removed: tuple[str, ...] = ()
    settings_changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReindexPlan:
    """What a re-index would do."""

    live_version: str | None
    fingerprint: str
    up_to_date: bool
    model_changed: bool
    points: tuple[ExamplePoint, ...]
    reusable: frozenset[str]
    changes: tuple[RouteChange, ...]
    # The live version's points and vectors, read once for the diff and the reuse.
    stored: StoredPoints | None = field(default=None, compare=False, repr=False)
    # How the loaded backend compares with the live version's reference vectors (None: same
    # model but no reference recorded, or another model).
    parity: ParityResult | None = field(default=None, compare=False)
    live_reference: Reference | None = field(default=None, compare=False, repr=False)

    @property
    def reembed_reason(self) -> str:
        """Why every example is embedded again ("" when stored vectors are reused)."""
        if not self.model_changed:
            return ""
        if self.parity is not None and not self.parity.ok:
            return f"the loaded backend does not reproduce the live version's vectors ({self.parity.reason})"
        return "the embedding model or dimension changed"

    @property
    def to_embed(self) -> tuple[ExamplePoint, ...]:
        """Points whose vectors are not in the live version."""
        return tuple(p for p in self.points if p.id not in self.reusable)


@dataclass(frozen=True)
class ReindexReport:
    """What a re-index did."""

    version: str
    previous_version: str | None
    routes: int
    examples: int  # the routes' examples (the follow-ups not counted)
    embedded: int  # examples and follow-ups alike
    reused: int
    seconds: float
    changed: bool
    dropped_versions: tuple[str, ...] = field(default=())
    live_after: str | None = None  # what the live pointer named when this re-index finished
    follow_ups: int = 0  # the route set's follow-ups (router_core.follow_ups), indexed with the examples
    replies: int = 0  # the route set's replies (router_core.replies), indexed with the examples

    @property
    def superseded(self) -> bool:
        """Another re-index switched the live pointer after this one (or instead of it)."""
        return self.live_after is not None and self.live_after != self.version


def live_to_replace(store: IndexStore) -> str | None:
    """The live version a re-index builds on: None before the first index, and None (with a
    warning) when the live pointer names a version that does not exist, which publishing a new
    version repairs."""
    try:
        return store.live_version()
    except IndexMissing as exc:
        log.warning("%s", exc)
        return None


def plan_reindex(
    table: RouteTable, store: IndexStore, embedder: Embedder, *, check_vectors: bool = True
) -> ReindexPlan:
    """Compare the routes with the live version without writing anything. Without
    `check_vectors` (a preview: `--dry-run`) the loaded backend's vectors are not compared with
    the live version's reference, so that no model is loaded; the re-index itself checks them."""
    live = live_to_replace(store)
    points = example_points(table)
    fp = fingerprint(embedder.model_id, embedder.dimension, table)
    if live is None:
        changes = tuple(RouteChange(r.name, "added", examples_added=r.examples) for r in table.routes)
        return ReindexPlan(
            live_version=None,
            fingerprint=fp,
            up_to_date=False,
            model_changed=False,
            points=points,
            reusable=frozenset(),
            changes=changes,
        )
    manifest = store.manifest(live)
    stored = store.stored_points(live)
    same_model = manifest.model_id == embedder.model_id and manifest.dimension == embedder.dimension
    reference = Reference.from_dict(manifest.reference) if manifest.reference else None
    parity = _parity_for_reuse(reference, embedder, points, stored, check_vectors) if same_model else None
    if parity is not None and not parity.ok:  # same model, other vectors (int8, bf16): not reusable
        same_model = False
    reusable = frozenset(p.id for p in stored.points) if same_model else frozenset()
    changes = _diff(manifest, stored, table)
    # A version without reference vectors is published again (reusing its vectors) to record them.
    return ReindexPlan(
        live_version=live,
        fingerprint=fp,
        up_to_date=manifest.fingerprint == fp and same_model and reference is not None,
        model_changed=not same_model,
        points=points,
        reusable=reusable,
        changes=changes,
        stored=stored,
        parity=parity,
        live_reference=reference if same_model else None,
    )


def _parity_for_reuse(
    reference: Reference | None,
    embedder: Embedder,
    points: tuple[ExamplePoint, ...],
    stored: StoredPoints,
    check_vectors: bool = True,
) -> ParityResult | None:
    """Whether new vectors of `embedder` may sit beside the stored ones: refused outright when an
    approximate backend meets another; checked on the reference sentences only when something
    is to be embedded (an unchanged index needs no model loaded) and `check_vectors`; None when
    nothing is known."""
    if reference is None:
        return None
    mismatch = approximate_mismatch(embedder.backend, reference.backend)
    if mismatch:
        return ParityResult(False, embedder.backend, reference.backend, None, reason=mismatch)
    stored_ids = {p.id for p in stored.points}
    if not check_vectors or all(p.id in stored_ids for p in points):
        return None
    return check_parity(reference, embedder)


def run_reindex(
    table: RouteTable,
    store: IndexStore,
    embedder: Embedder,
    *,
    batch_size: int = 64,
    progress: bool = False,
    keep_versions: int = 2,
    on_stage: Callable[[str], None] | None = None,
) -> ReindexReport:
    """Publish a version for `table` unless the live one already matches it."""
    started = time.perf_counter()
    stage = on_stage or (lambda _msg: None)
    with store.writing():  # one re-index of an index at a time, from plan to drop
        report = _reindex_locked(table, store, embedder, batch_size, progress, keep_versions, stage)
    live_after = _live_or_none(store)
    return replace(report, seconds=time.perf_counter() - started, live_after=live_after)


def _reindex_locked(
    table: RouteTable,
    store: IndexStore,
    embedder: Embedder,
    batch_size: int,
    progress: bool,
    keep_versions: int,
    stage: Callable[[str], None],
) -> ReindexReport:
    plan = plan_reindex(table, store, embedder)
    if plan.up_to_date and plan.live_version is not None:
        dropped = _drop_old(store, keep_versions)
        return ReindexReport(
            version=plan.live_version,
            previous_version=plan.live_version,
            routes=len(table.routes),
            examples=len(plan.points) - len(table.follow_ups) - len(table.replies),
            follow_ups=len(table.follow_ups),
            replies=len(table.replies),
            embedded=0,
            reused=len(plan.points),
            seconds=0.0,
            changed=False,
            dropped_versions=dropped,
        )
    if embedder.backend in APPROXIMATE_BACKENDS:
        stage(
            f"note: backend {embedder.backend} computes approximate vectors (they change routing "
            "decisions): re-run calibrate on this index"
        )
    vectors = _vectors_for(plan, store, embedder, batch_size=batch_size, progress=progress, stage=stage)
    version = new_version_id(plan.fingerprint)
    # Reused vectors keep the live version's reference (it describes them); a full embed records
    # the loaded backend's.
    reference = plan.live_reference if plan.reusable and plan.live_reference else record_reference(embedder)
    manifest = IndexManifest(
        version=version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        model_id=embedder.model_id,
        model_source=embedder.source,
        dimension=embedder.dimension,
        fingerprint=plan.fingerprint,
        points=len(plan.points),
        route_table=table.to_dict(),
        backend=embedder.backend,
        reference=reference.to_dict(),
    )
    stage(f"writing version {version}")
    store.write_version(manifest, plan.points, vectors)
    stage("switching the live pointer")
    store.activate(version)
    dropped = _drop_old(store, keep_versions)
    embedded = len(plan.to_embed)
    return ReindexReport(
        version=version,
        previous_version=plan.live_version,
        routes=len(table.routes),
        examples=len(plan.points) - len(table.follow_ups) - len(table.replies),
        follow_ups=len(table.follow_ups),
        replies=len(table.replies),
        embedded=embedded,
        reused=len(plan.points) - embedded,
        seconds=0.0,
        changed=True,
        dropped_versions=dropped,
    )


def _live_or_none(store: IndexStore) -> str | None:
    try:
        return store.live_version()
    except RouterError:
        return None


def _vectors_for(
    plan: ReindexPlan,
    store: IndexStore,
    embedder: Embedder,
    *,
    batch_size: int,
    progress: bool,
    stage: Callable[[str], None],
) -> np.ndarray:
    vectors = np.zeros((len(plan.points), embedder.dimension), dtype=np.float32)
    missing = [i for i, p in enumerate(plan.points) if p.id not in plan.reusable]
    if plan.reusable and plan.live_version is not None:
        stored = plan.stored or store.stored_points(plan.live_version)
        rows = stored.by_id()
        for i, p in enumerate(plan.points):
            if p.id in plan.reusable:
                vectors[i] = stored.vectors[rows[p.id]]
    if missing:
        stage(f"embedding {len(missing)} example(s)")
        vectors[missing] = embedder.encode_documents(
            [plan.points[i].text for i in missing], batch_size=batch_size, progress=progress
        )
    return vectors


def _drop_old(store: IndexStore, keep: int) -> tuple[str, ...]:
    live = _live_or_none(store)
    candidates = [v for v in store.versions() if v != live]
    surplus = candidates[: max(0, len(candidates) - (keep - 1))]
    dropped = []
    for version in surplus:
        try:
            if store.drop_version(version):
                dropped.append(version)
        except RouterError as exc:  # the new version is live; a leftover is only disk space
            log.warning("could not drop old index version %s: %s", version, exc)
    return tuple(dropped)


def _diff(manifest: IndexManifest, stored: StoredPoints, table: RouteTable) -> tuple[RouteChange, ...]:
    old_examples: dict[str, list[str]] = {}
    for p in stored.points:
        old_examples.setdefault(p.route, []).append(p.text)
    old_routes = {r["name"]: r for r in manifest.route_table.get("routes", [])}
    new_dict = {r["name"]: r for r in table.to_dict()["routes"]}
    changes: list[RouteChange] = []
    for route in table.routes:
        if route.name not in old_routes:
            changes.append(RouteChange(route.name, "added", examples_added=route.examples))
            continue
        before = set(old_examples.get(route.name, ()))
        after = set(route.examples)
        settings = tuple(
            key
            for key in ("description", "threshold", "agent")
            if old_routes[route.name].get(key) != new_dict[route.name][key]
        )
        added = tuple(t for t in route.examples if t not in before)
        removed = tuple(sorted(before - after))
        if added or removed or settings:
            changes.append(
                RouteChange(
                    route.name, "changed", examples_added=added, examples_removed=removed, settings_changed=settings
                )
            )
    changes.extend(
        RouteChange(name, "removed", examples_removed=tuple(old_examples.get(name, ())))
        for name in old_routes
        if name not in new_dict
    )
    old_defaults = {k: v for k, v in manifest.route_table.items() if k != "routes"}
    new_defaults = {k: v for k, v in table.to_dict().items() if k != "routes"}
    if old_defaults != new_defaults:
        keys = tuple(sorted(k for k in new_defaults if old_defaults.get(k) != new_defaults[k]))
        changes.append(RouteChange("_router", "changed", settings_changed=keys))
    return tuple(changes)
