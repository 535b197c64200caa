"""The embedded default: each version is a Qdrant Edge shard in its own directory.

Layout under `<data_dir>/<collection>/`:
    LIVE                           name of the live version (replaced atomically)
    versions/<version>/shard/      the Qdrant Edge shard
    versions/<version>/manifest.json, points.jsonl, vectors.npy
    versions/<version>/.lock       readers hold a shared flock while the version is open
    staging/                       versions being built; moved into versions/ when complete

Shards are built without a write-ahead log, so several service processes can open one version
read-only. The indexer never opens a published shard: it reuses embeddings from the plain
`vectors.npy` beside it, builds the next version in staging/, renames it into place and then
rewrites LIVE. A version is deleted only when it is not live and no reader holds its lock.
Leftovers of a killed build stay in staging/ until a later build finds them untouched for
`STAGING_GRACE_S`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np
from qdrant_edge import (
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeVectorParams,
    Point,
    Query,
    SearchParams,
    SearchRequest,
    UpdateOperation,
)

from router_core.embedding import Vectors
from router_core.errors import IndexMissing, StoreUnavailable
from router_core.manifest import ExamplePoint, IndexManifest
from router_core.neighbours import Neighbour
from router_core.store.protocol import OpenIndex, StoredPoints, neighbour_from_payload

log = logging.getLogger("router.store")
# A staging entry unchanged this long belongs to no live build (writing a version takes seconds).
STAGING_GRACE_S = 600.0

_UPSERT_BATCH = 1000


class EdgeStore:
    """Versioned indexes on local disk, searched in-process by Qdrant Edge."""

    def __init__(self, data_dir: Path | str, collection: str = "router", *, exact: bool = True):
        self.root = Path(data_dir) / collection
        self._versions = self.root / "versions"
        self._staging = self.root / "staging"
        self._live = self.root / "LIVE"
        self._exact = exact

    # -- reading --------------------------------------------------------------------------
    def live_version(self) -> str | None:
        """The version named by LIVE, if that version exists."""
        try:
            name = self._live.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {self._live}: {exc}") from exc
        return name if name and (self._versions / name / "manifest.json").is_file() else None

    def versions(self) -> list[str]:
        """Complete versions, oldest first (names sort by build time)."""
        if not self._versions.is_dir():
            return []
        return sorted(p.name for p in self._versions.iterdir() if (p / "manifest.json").is_file())

    def manifest(self, version: str) -> IndexManifest:
        """Read a version's manifest."""
        path = self._versions / version / "manifest.json"
        try:
            return IndexManifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError as exc:
            raise IndexMissing(f"index version {version!r} not found under {self.root}") from exc
        except (OSError, ValueError, TypeError) as exc:
            raise StoreUnavailable(f"index version {version!r} is unreadable: {exc}") from exc

    def stored_points(self, version: str) -> StoredPoints:
        """Points and vectors from the plain files beside the shard."""
        folder = self._versions / version
        try:
            with (folder / "points.jsonl").open(encoding="utf-8") as fh:
                points = tuple(ExamplePoint(**json.loads(line)) for line in fh if line.strip())
            vectors = np.load(folder / "vectors.npy")
        except (OSError, ValueError, TypeError) as exc:
            raise StoreUnavailable(f"index version {version!r} is unreadable: {exc}") from exc
        if len(points) != len(vectors):
            raise StoreUnavailable(f"index version {version!r} is corrupt: points != vectors")
        return StoredPoints(points, vectors.astype(np.float32, copy=False))

    # -- writing --------------------------------------------------------------------------
    def write_version(self, manifest: IndexManifest, points: Sequence[ExamplePoint], vectors: Vectors) -> None:
        """Build the version in staging/, then rename it into versions/ in one step."""
        final = self._versions / manifest.version
        if final.exists():
            raise StoreUnavailable(f"index version {manifest.version!r} already exists")
        self._staging.mkdir(parents=True, exist_ok=True)
        self._versions.mkdir(parents=True, exist_ok=True)
        for name in self.clean_staging():
            log.info("removed %s, left in staging/ by a build or deletion that died", name)
        work = self._staging / f"{manifest.version}.{uuid.uuid4().hex[:8]}"
        try:
            _build_shard(work / "shard", manifest.dimension, points, vectors)
            np.save(work / "vectors.npy", np.asarray(vectors, dtype=np.float32))
            with (work / "points.jsonl").open("w", encoding="utf-8") as fh:
                for p in points:
                    fh.write(json.dumps({"id": p.id, "route": p.route, "text": p.text}) + "\n")
            (work / ".lock").touch()
            _write_synced(work / "manifest.json", json.dumps(manifest.to_dict(), indent=1))
            os.replace(work, final)
            _fsync_dir(self._versions)
        except BaseException as exc:
            shutil.rmtree(work, ignore_errors=True)
            if isinstance(exc, Exception):  # OSError or an engine error (disk full, ...)
                raise StoreUnavailable(f"cannot write index version {manifest.version!r}: {exc}") from exc
            raise

    def activate(self, version: str) -> None:
        """Point LIVE at `version` with an atomic rename."""
        if not (self._versions / version / "manifest.json").is_file():
            raise IndexMissing(f"cannot activate missing version {version!r}")
        tmp = self.root / f".LIVE.{uuid.uuid4().hex[:8]}"
        try:
            _write_synced(tmp, version + "\n")
            os.replace(tmp, self._live)
            _fsync_dir(self.root)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreUnavailable(f"cannot switch the live index: {exc}") from exc

    def drop_version(self, version: str) -> bool:
        """Delete a version unless it is live or a reader holds its lock."""
        if version == self.live_version():
            return False
        folder = self._versions / version
        lock = _try_lock(folder / ".lock", exclusive=True)
        if lock is None:
            return False
        try:
            trash = self._staging / f".trash-{version}.{uuid.uuid4().hex[:8]}"
            self._staging.mkdir(parents=True, exist_ok=True)
            os.replace(folder, trash)
        finally:
            lock.close()
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def clean_staging(self, older_than_s: float = STAGING_GRACE_S) -> list[str]:
        """Remove leftovers of builds killed half-way (and of interrupted deletions) that have
        not changed for `older_than_s` seconds; a build in progress is younger. Their names."""
        removed: list[str] = []
        if not self._staging.is_dir():
            return removed
        cutoff = time.time() - older_than_s
        for leftover in self._staging.iterdir():
            try:
                if leftover.stat().st_mtime < cutoff:
                    shutil.rmtree(leftover, ignore_errors=True)
                    removed.append(leftover.name)
            except OSError:  # gone meanwhile
                continue
        return removed

    # -- serving --------------------------------------------------------------------------
    def open_version(self, version: str) -> OpenIndex:
        """Open the version's shard for searching, holding its lock until closed."""
        manifest = self.manifest(version)
        table = manifest.table(self.stored_points(version).points)  # before the lock: may raise
        folder = self._versions / version
        lock = _try_lock(folder / ".lock", exclusive=False)
        if lock is None:
            raise StoreUnavailable(f"index version {version!r} is being deleted")
        try:
            shard = EdgeShard.load(str(folder / "shard"))
        except Exception as exc:  # the engine reports corrupt or missing data many ways
            lock.close()
            hint = (
                " (another process holds it: versions built before WAL-less shards can be "
                "opened by one process at a time; re-index to rebuild)"
                if "WouldBlock" in str(exc)
                else ""
            )
            raise StoreUnavailable(f"cannot open index version {version!r}: {exc}{hint}") from exc
        searcher = _EdgeSearcher(shard, lock, exact=self._exact)
        return OpenIndex(manifest, table, searcher)

    def ping(self) -> None:
        """The data directory must be readable."""
        if self.root.exists() and not os.access(self.root, os.R_OK | os.X_OK):
            raise StoreUnavailable(f"index directory {self.root} is not readable")

    def close(self) -> None:
        """Nothing to release: each open version owns its shard."""


class _EdgeSearcher:
    def __init__(self, shard: EdgeShard, lock: IO[bytes], *, exact: bool) -> None:
        self._shard = shard
        self._lock = lock
        self._params = SearchParams(exact=exact)

    def search(self, vectors: Vectors, k: int) -> list[list[Neighbour]]:
        results = []
        for row in vectors:
            try:
                hits = self._shard.search(
                    SearchRequest(
                        query=Query.Nearest(row.tolist()),
                        limit=k,
                        with_payload=True,
                        params=self._params,
                    )
                )
            except Exception as exc:  # engine errors surface as generic exceptions
                raise StoreUnavailable(f"embedded search failed: {exc}") from exc
            results.append([neighbour_from_payload(h.payload, h.score) for h in hits])
        return results

    def close(self) -> None:
        try:
            self._shard.close()
        finally:
            self._lock.close()


def _build_shard(path: Path, dimension: int, points: Sequence[ExamplePoint], vectors: Vectors) -> None:
    # No WAL: a version is written once, flushed, and never updated after it is published;
    # without a WAL lock several processes (service replicas) can open the same version.
    shard = EdgeShard.create(
        str(path),
        EdgeConfig(vectors=EdgeVectorParams(size=dimension, distance=Distance.Cosine), wal_enabled=False),
    )
    try:
        for start in range(0, len(points), _UPSERT_BATCH):
            batch = [
                Point(id=p.id, vector=vectors[start + i].tolist(), payload={"route": p.route, "text": p.text})
                for i, p in enumerate(points[start : start + _UPSERT_BATCH])
            ]
            shard.update(UpdateOperation.upsert_points(batch))
        shard.flush()
    finally:
        shard.close()


def _try_lock(path: Path, *, exclusive: bool) -> IO[bytes] | None:
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fh, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


def _write_synced(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
