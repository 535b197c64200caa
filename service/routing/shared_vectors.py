"""Message vectors shared by the worker processes of one service.

The supervisor hands each new connection to the next worker in turn (`service.workers`), so
the next turn of a live chat whose client opens a connection per request lands on another
worker than its previous turn; with a vector cache per process that worker embeds the whole
window again (11 texts for a 10-turn SGD chat: measured, every such turn with 2 workers).
This table lets every worker read the conversations' message vectors any of them embedded
(single queries stay out of it: they rarely come back, and would push the chats out).

One memory-mapped file per model (vector length fixed) in a directory only the service's user
can enter, made by the supervisor (`SHARED_DIR_ENV`); a set-associative table of `WAYS` slots
per bucket, each slot: a key (a 64-bit keyed BLAKE2b digest of the model and the text, the
key read from the directory's `secret` file: texts cannot be crafted to collide), a check
(a digest of the key and the vector's bytes) and the vector. No lock: a writer clears the
key, writes the vector and its check, then the key; a reader copies the slot and keeps it
only when the key still matches and the check matches the copy, so a slot being rewritten
reads as a miss, never as a torn vector. A full bucket drops one of its slots in turn.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

log = logging.getLogger("router.routing")

SHARED_DIR_ENV = "ROUTER_WORKERS_SHARED_DIR"
"""Set by the supervisor in its workers' environment: the directory of the shared tables."""

WAYS = 4
MAGIC = b"RTRVEC01"
HEADER = 64
SECRET_FILE = "secret"
PID_FILE = "pid"
PREFIX = "router-shared-"


def make_shared_dir(parent: Path | None = None) -> Path:
    """A new directory for the tables (mode 0700) with its key file and the supervisor's pid:
    the supervisor's. In /dev/shm when there is one (memory, not disk). The directories of
    supervisors that are gone (killed before they could remove theirs) are removed first."""
    shm = Path("/dev/shm")
    base = parent if parent is not None else (shm if shm.is_dir() and os.access(shm, os.W_OK) else None)
    remove_stale(Path(base) if base is not None else Path(tempfile.gettempdir()))
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
    fd = os.open(folder / SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(os.urandom(32))
    (folder / PID_FILE).write_text(str(os.getpid()))
    return folder


def remove_stale(base: Path) -> list[Path]:
    """Remove this user's shared directories in `base` whose supervisor has gone; those removed."""
    removed = []
    for folder in base.glob(f"{PREFIX}*"):
        try:
            info = folder.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            pid = int((folder / PID_FILE).read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
            continue  # its supervisor runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def open_shared_dir(path: str | None, slots: int) -> SharedVectors | None:
    """The tables in `path` (the environment's SHARED_DIR_ENV), or None when it is unset or not a
    private directory of this user holding its key (then each worker keeps its own cache)."""
    if not path:
        return None
    folder = Path(path)
    try:
        info = folder.lstat()
        secret_info = (folder / SECRET_FILE).lstat()
        private = (
            stat.S_ISDIR(info.st_mode)
            and info.st_uid == os.getuid()
            and not info.st_mode & 0o077
            and stat.S_ISREG(secret_info.st_mode)
            and secret_info.st_uid == os.getuid()
            and not secret_info.st_mode & 0o077
        )
        secret = (folder / SECRET_FILE).read_bytes() if private else b""
    except OSError:
        private, secret = False, b""
    if not private or len(secret) < 16:
        log.warning(
            "%s is not a private directory with its key: each worker keeps its own vector cache", SHARED_DIR_ENV
        )
        return None
    return SharedVectors(folder, secret[:64], slots)


class SharedVectors:
    """The shared tables of one service, one per model (opened on first use)."""

    def __init__(self, folder: Path, secret: bytes, slots: int) -> None:
        self._folder = folder
        self._secret = secret
        self._buckets = max(1, -(-slots // WAYS))
        self._tables: dict[tuple[str, int], _Table | None] = {}
        self._lock = threading.Lock()

    def key(self, model_id: str, text: str) -> int:
        """The slot key of `text` under `model_id` (never 0: 0 marks an empty slot)."""
        text_bytes = f"{model_id}\0{text}".encode("utf-8", "surrogatepass")  # any str a JSON body decodes to
        digest = hashlib.blake2b(text_bytes, digest_size=8, key=self._secret).digest()
        return int.from_bytes(digest, "little") or 1

    def get(self, model_id: str, dimension: int, texts: Sequence[str]) -> list[npt.NDArray[np.float32] | None]:
        """The vector of each text that some worker stored, else None."""
        table = self._table(model_id, dimension)
        if table is None:
            return [None] * len(texts)
        return [table.get(self.key(model_id, t)) for t in texts]

    def has(self, model_id: str, dimension: int, text: str) -> bool:
        """Whether `text`'s vector is stored (its key is; the vector is checked on `get`). Opens a
        table another worker made but never makes one: the event loop asks this, and making the
        file (reserving its space) is the worker thread's, on its first `get` or `put`."""
        table = self._table(model_id, dimension, create=False)
        return table is not None and table.holds(self.key(model_id, text))

    def put(self, model_id: str, texts: Sequence[str], vectors: npt.NDArray[np.float32]) -> None:
        """Store each text's vector (rows of `vectors`)."""
        table = self._table(model_id, int(vectors.shape[1]))
        if table is None:
            return
        for text, vector in zip(texts, vectors, strict=True):
            table.put(self.key(model_id, text), vector)

    def _table(self, model_id: str, dimension: int, *, create: bool = True) -> _Table | None:
        name = (model_id, dimension)
        with self._lock:
            if name not in self._tables:
                stem = hashlib.blake2b(model_id.encode(), digest_size=8).hexdigest()
                path = self._folder / f"vectors-{stem}-{dimension}.bin"
                if not create and _size(path) == 0:  # none yet, or another worker is making it
                    return None
                try:
                    self._tables[name] = _Table(path, dimension, self._buckets, self._secret)
                except (OSError, ValueError) as exc:
                    log.warning("shared vector table %s unusable (%s): this worker keeps its own", path.name, exc)
                    self._tables[name] = None
            return self._tables[name]


def _size(path: Path) -> int:
    """The file's length (0: there is none)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


class _Table:
    """One model's table in its memory-mapped file."""

    def __init__(self, path: Path, dimension: int, buckets: int, secret: bytes) -> None:
        self._secret = secret
        self._dtype = np.dtype([("key", "<u8"), ("check", "<u8"), ("vector", "<f4", (dimension,))])
        size = HEADER + buckets * WAYS * self._dtype.itemsize
        header = MAGIC + np.array([dimension, WAYS, buckets], dtype="<u8").tobytes()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            length = os.fstat(fd).st_size
            if length not in (0, size):
                raise ValueError(f"{path.name} holds another layout")
            if length == 0:  # the first worker to use this model makes it (another may race: same bytes)
                # space reserved now (ENOSPC here, not SIGBUS on a later write to a full tmpfs)
                os.posix_fallocate(fd, 0, size)
            current = os.pread(fd, len(header), 0)
            if current == bytes(len(header)):
                os.pwrite(fd, header, 0)
            elif current != header:
                raise ValueError(f"{path.name} holds another layout")
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        rows = np.frombuffer(self._map, dtype=self._dtype, offset=HEADER, count=buckets * WAYS)
        self._slots = rows.reshape(buckets, WAYS)
        self._buckets = buckets
        self._turn = 0

    def _check(self, key: int, vector: npt.NDArray[np.float32]) -> int:
        digest = hashlib.blake2b(vector.tobytes(), digest_size=8, key=self._secret, salt=key.to_bytes(8, "little"))
        return int.from_bytes(digest.digest(), "little")

    def _way(self, key: int) -> tuple[npt.NDArray[np.void], int]:
        bucket = self._slots[key % self._buckets]
        found = np.flatnonzero(bucket["key"] == key)
        return bucket, int(found[0]) if len(found) else -1

    def holds(self, key: int) -> bool:
        return self._way(key)[1] >= 0

    def get(self, key: int) -> npt.NDArray[np.float32] | None:
        bucket, way = self._way(key)
        if way < 0:
            return None
        vector = np.array(bucket["vector"][way], dtype=np.float32)
        check = int(bucket["check"][way])
        if int(bucket["key"][way]) != key or check != self._check(key, vector):
            return None  # being rewritten: a miss
        return vector

    def put(self, key: int, vector: npt.NDArray[np.float32]) -> None:
        bucket, way = self._way(key)
        if way >= 0:
            return
        empty = np.flatnonzero(bucket["key"] == 0)
        if len(empty):
            way = int(empty[0])
        else:
            way = self._turn
            self._turn = (self._turn + 1) % WAYS
        row = np.ascontiguousarray(vector, dtype=np.float32)
        bucket["key"][way] = 0
        bucket["vector"][way] = row
        bucket["check"][way] = self._check(key, row)
        bucket["key"][way] = key
