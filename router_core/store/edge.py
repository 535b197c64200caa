"""The embedded default: each version is a Qdrant Edge shard in its own directory.

Layout under `<data_dir>/<collection>/`:
    LIVE                           name of the live version (replaced atomically)
    versions/<version>/shard/      the Qdrant Edge shard
    versions/<version>/manifest.json, points.jsonl, vectors.npy
    versions/<version>/.lock       readers hold a shared flock while the version is open
    staging/                       versions being built; moved into versions/ when complete

An open version is searched by its vectors held in memory (scan "matrix", the default: an exact
numpy scan, router_core.store.matrix, that leaves the interpreter lock to the event loop) or by
Qdrant Edge's exact search over its shard (scan "engine"). Shards are built without a
write-ahead log, so several service processes can open one version read-only. The indexer never
opens a published shard: it reuses embeddings from the plain `vectors.npy` beside it, builds the next
version in staging/, renames it into place and then rewrites LIVE. A version is deleted only
when it is not live and no reader holds its lock. Leftovers of a killed build stay in staging/
until a later build finds them untouched for `STAGING_GRACE_S`.

Writers take an exclusive lock on `<data_dir>/<collection>/.writer.lock` for a whole re-index
(plan, write, switch, drop): a second re-index of the same index is refused (IndexBusy)
instead of racing the first.

Opening a version's shard (scan "engine") maps its files, and Qdrant Edge touches every page
of its vector storage as it loads. Where the files are sparse (tmpfs, most disks) a touch may need space the
file system no longer has, and a process touching such a page dies of SIGBUS. So when free
space is short of the shard's unallocated bytes, the version is first opened by a child
process; if the child dies, the version is refused with the reason and the caller keeps what it
serves. With the engine's search, a read-only data directory is served from a private (sparse)
copy of each shard in the temporary directory, since the engine opens its files for writing;
the matrix scan reads the version's files where they are.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Literal

import numpy as np
from qdrant_edge import (
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeVectorParams,
    Point,
    Query,
    QueryBatchRequest,
    QueryRequest,
    SearchParams,
    UpdateOperation,
)

from router_core.embedding import Vectors
from router_core.errors import IndexBusy, IndexMissing, StoreUnavailable
from router_core.follow_ups import split_rows, take_rows
from router_core.manifest import ExamplePoint, IndexManifest
from router_core.neighbours import Neighbour
from router_core.store.matrix import MatrixSearcher
from router_core.store.protocol import OpenIndex, StoredPoints, banks, neighbour_from_payload

log = logging.getLogger("router.store")
# How an open version is searched: its vectors in memory by numpy (router_core.store.matrix), or
# by the Qdrant Edge engine's exact search over its shard.
EmbeddedScan = Literal["matrix", "engine"]
# A staging entry unchanged this long belongs to no live build (writing a version takes seconds).
STAGING_GRACE_S = 600.0

_UPSERT_BATCH = 1000
# Free space kept beyond a shard's unallocated bytes before opening it without a trial.
_SPACE_MARGIN = 16 * 1024 * 1024
_TRIAL_TIMEOUT_S = 120.0
# Run by the trial open: load the shard and search it once, as the service will.
_TRIAL = """
import sys
from qdrant_edge import EdgeShard, Query, SearchParams, SearchRequest
shard = EdgeShard.load(sys.argv[1])
shard.search(SearchRequest(query=Query.Nearest([0.0] * int(sys.argv[2])), limit=1, params=SearchParams(exact=True)))
shard.close()
"""


class EdgeStore:
    """Versioned indexes on local disk (Qdrant Edge shards), searched in-process."""

    def __init__(
        self, data_dir: Path | str, collection: str = "router", *, exact: bool = True, scan: EmbeddedScan = "matrix"
    ):
        self.root = Path(data_dir) / collection
        self._versions = self.root / "versions"
        self._staging = self.root / "staging"
        self._live = self.root / "LIVE"
        self._exact = exact
        self.scan = scan

    # -- reading --------------------------------------------------------------------------
    def live_version(self) -> str | None:
        """The version named by LIVE; None before the first index. IndexMissing when LIVE names
        a version that does not exist (deleted, or copied without it): that is a broken index,
        not an empty one."""
        try:
            name = self._live.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {self._live}: {exc}") from exc
        if not name:
            return None
        if not (self._versions / name / "manifest.json").is_file():
            raise IndexMissing(
                f"the live pointer {self._live} names index version {name!r}, which does not exist "
                "(deleted, or never completed); re-index to publish a new version"
            )
        return name

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the index's writer lock; IndexBusy when another re-index holds it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fh = (self.root / ".writer.lock").open("ab")
        except OSError as exc:
            raise StoreUnavailable(f"cannot write the index under {self.root}: {exc.strerror or exc}") from exc
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IndexBusy(
                    f"another re-index is writing the index in {self.root}; nothing was changed by this one, "
                    "try again when it finishes"
                ) from None
            yield
        finally:
            fh.close()

    def _live_name(self) -> str | None:
        """What LIVE says, whether or not that version exists."""
        try:
            return self._live.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {self._live}: {exc}") from exc

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

    def stored_points(self, version: str, *, mapped: bool = False) -> StoredPoints:
        """Points and vectors from the plain files beside the shard; with `mapped`, the vectors
        are the file mapped read-only (the page cache shares them between processes)."""
        folder = self._versions / version
        try:
            with (folder / "points.jsonl").open(encoding="utf-8") as fh:
                points = tuple(ExamplePoint(**json.loads(line)) for line in fh if line.strip())
            vectors = np.load(folder / "vectors.npy", mmap_mode="r" if mapped else None)
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
        if version == self._live_name():
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
        """Open the version for searching, holding its lock until closed: its vectors in memory
        (scan "matrix"), or its shard (scan "engine")."""
        manifest = self.manifest(version)
        # mapped: a version's vectors are written once and never changed in place (a deleted
        # version's files are unlinked only when no reader holds its lock); the matrix scan copies
        # a small index into the process and leaves a large one mapped, one copy in the page cache
        # for every worker process (router_core.store.matrix.PRIVATE_BYTES)
        stored = self.stored_points(version, mapped=self.scan == "matrix")
        table = manifest.table(stored.points)  # before the lock: may raise
        folder = self._versions / version
        if stored.vectors.shape != (len(stored.points), manifest.dimension):
            raise StoreUnavailable(
                f"index version {version!r} is corrupt: vectors of shape {stored.vectors.shape} "
                f"for {len(stored.points)} points of dimension {manifest.dimension}"
            )
        examples, _ = split_rows([p.route for p in stored.points])
        follow_ups, replies = banks(version, stored, table)
        lock = _try_lock(folder / ".lock", exclusive=False)
        if lock is None:
            raise StoreUnavailable(f"index version {version!r} is being deleted")
        if self.scan == "matrix":
            try:
                searcher = MatrixSearcher(
                    take_rows(stored.vectors, examples),
                    [stored.points[i].route for i in examples],
                    [stored.points[i].text for i in examples],
                    on_close=lock.close,
                )
            except ValueError as exc:
                lock.close()
                raise StoreUnavailable(f"index version {version!r} is corrupt: {exc}") from exc
            return OpenIndex(manifest, table, searcher, follow_ups, replies)
        return OpenIndex(
            manifest, table, self._open_shard(version, folder, manifest.dimension, lock), follow_ups, replies
        )

    def _open_shard(self, version: str, folder: Path, dimension: int, lock: IO[bytes]) -> _EdgeSearcher:
        """The engine's searcher over the version's shard (its lock released if it cannot open)."""
        private: Path | None = None
        try:
            shard_dir = folder / "shard"
            if not _writable(shard_dir):
                private = _private_copy(shard_dir, version)
                shard_dir = private / "shard"
            _check_openable(shard_dir, version, dimension)
            shard = EdgeShard.load(str(shard_dir))
        except BaseException as exc:
            lock.close()
            if private is not None:
                shutil.rmtree(private, ignore_errors=True)
            if isinstance(exc, StoreUnavailable) or not isinstance(exc, Exception):
                raise
            hint = (
                " (another process holds it: versions built before WAL-less shards can be "
                "opened by one process at a time; re-index to rebuild)"
                if "WouldBlock" in str(exc)
                else ""
            )
            raise StoreUnavailable(f"cannot open index version {version!r}: {exc}{hint}") from exc
        return _EdgeSearcher(shard, lock, exact=self._exact, private=private)

    def ping(self) -> None:
        """The index directory must exist and be readable: a service whose directory was
        deleted still answers from the version it has open, but can neither follow a re-index
        nor restart."""
        if not self.root.is_dir():
            raise StoreUnavailable(f"index directory {self.root} does not exist (deleted?); re-index to restore it")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise StoreUnavailable(f"index directory {self.root} is not readable")

    def close(self) -> None:
        """Nothing to release: each open version owns its shard."""


class _EdgeSearcher:
    def __init__(self, shard: EdgeShard, lock: IO[bytes], *, exact: bool, private: Path | None = None) -> None:
        self._shard = shard
        self._lock = lock
        self._params = SearchParams(exact=exact)
        self._private = private  # a private copy of a read-only shard, removed on close

    def search(self, vectors: Vectors, k: int) -> list[list[Neighbour]]:
        """The k nearest examples of each row, in one planned batch: the engine scores the rows
        together in one pass over the segment (16 queries over 15,000 examples: 9.0 ms, against
        17.1 ms one request at a time; the same neighbours and scores)."""
        if len(vectors) == 0:
            return []
        requests = [
            QueryRequest(limit=k, query=Query.Nearest(row.tolist()), with_payload=True, params=self._params)
            for row in vectors
        ]
        try:
            batches = self._shard.query_batch(QueryBatchRequest(requests))
        except Exception as exc:  # engine errors surface as generic exceptions
            raise StoreUnavailable(f"embedded search failed: {exc}") from exc
        return [[neighbour_from_payload(h.payload, h.score) for h in hits] for hits in batches]

    def close(self) -> None:
        try:
            self._shard.close()
        finally:
            self._lock.close()
            if self._private is not None:
                shutil.rmtree(self._private, ignore_errors=True)


def _build_shard(path: Path, dimension: int, points: Sequence[ExamplePoint], vectors: Vectors) -> None:
    # No WAL: a version is written once, flushed, and never updated after it is published;
    # without a WAL lock several processes (service replicas) can open the same version.
    examples, _ = split_rows([p.route for p in points])  # follow-ups and replies are never neighbours
    points, vectors = [points[i] for i in examples], take_rows(np.asarray(vectors), examples)
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


# -- opening a shard safely ------------------------------------------------------------------------
def _writable(shard_dir: Path) -> bool:
    """The engine opens shard files for writing: can it, here (read-only mounts included)?"""
    return all(os.access(path, os.W_OK) for path in (shard_dir, *shard_dir.rglob("*")))


def _private_copy(shard_dir: Path, version: str) -> Path:
    """A sparse copy of a read-only shard in the temporary directory (holes stay holes)."""
    target = Path(tempfile.mkdtemp(prefix=f"router-{version}-"))
    try:
        for path in sorted(shard_dir.rglob("*")):
            dest = target / "shard" / path.relative_to(shard_dir)
            if path.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                _copy_sparse(path, dest)
    except OSError as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise StoreUnavailable(
            f"cannot open index version {version!r} from a read-only directory: copying it to "
            f"{tempfile.gettempdir()} failed: {exc.strerror or exc}"
        ) from exc
    log.info("index version %s is read-only: serving a private copy in %s", version, target)
    return target


def _copy_sparse(source: Path, dest: Path) -> None:
    with source.open("rb") as src, dest.open("wb") as out:
        size = os.fstat(src.fileno()).st_size
        position = 0
        while position < size:
            try:
                data_at = os.lseek(src.fileno(), position, os.SEEK_DATA)
            except OSError:  # no data after `position` (ENXIO): the rest is a hole
                break
            hole_at = os.lseek(src.fileno(), data_at, os.SEEK_HOLE)
            src.seek(data_at)
            out.seek(data_at)
            remaining = hole_at - data_at
            while remaining > 0:
                chunk = src.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                out.write(chunk)
                remaining -= len(chunk)
            position = hole_at
        out.truncate(size)


def _unallocated_bytes(shard_dir: Path) -> int:
    """Bytes of the shard's files that are holes: opening may have to allocate them."""
    total = 0
    for path in shard_dir.rglob("*"):
        if path.is_file():
            info = path.stat()
            total += max(0, info.st_size - info.st_blocks * 512)
    return total


def _check_openable(shard_dir: Path, version: str, dimension: int) -> None:
    """Refuse a version whose opening could kill this process with SIGBUS: when free space is
    short of the shard's holes, a child process opens it first."""
    try:
        stats = os.statvfs(shard_dir)
        needed = _unallocated_bytes(shard_dir)
    except OSError as exc:
        raise StoreUnavailable(f"cannot open index version {version!r}: {exc.strerror or exc}") from exc
    free = stats.f_bavail * stats.f_frsize
    if free >= needed + _SPACE_MARGIN:
        return
    try:
        trial = subprocess.run(
            [sys.executable, "-I", "-c", _TRIAL, str(shard_dir), str(dimension)],
            capture_output=True,
            text=True,
            timeout=_TRIAL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StoreUnavailable(f"cannot open index version {version!r}: its trial open failed: {exc}") from exc
    if trial.returncode == 0:
        return
    how = (
        f"died of {signal.Signals(-trial.returncode).name}"
        if trial.returncode < 0
        else f"failed: {(trial.stderr.strip().splitlines() or ['exit ' + str(trial.returncode)])[-1][:200]}"
    )
    raise StoreUnavailable(
        f"cannot open index version {version!r}: the file system holding it has {free // 1024} KiB free and "
        f"opening may need up to {needed // 1024} KiB; a trial open in a child process {how}. Free some space "
        "(or move the data directory), then re-index or restart"
    )
