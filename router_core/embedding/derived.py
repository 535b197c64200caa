"""Files derived from a model (an ONNX export, its int8 version, an OpenVINO IR), built once per
machine and user and cached with a checksum of every file: by default under the XDG cache
directory (`$XDG_CACHE_HOME/semantic-router/models`, else `~/.cache/semantic-router/models`;
`ROUTER_INDEX__MODELS_DIR` moves it), whatever data directory an index lives in.

    <root>/<model slug>-<hash of the model's location>/<kind>/
        derived.json     what was built, from which model files (size, mtime), with which
                         inputs, and the sha256 of every file
        model.onnx ...   the files themselves

A cached copy is served only when the model's files are unchanged and every checksum holds;
otherwise it is rebuilt (a corrupt or stale copy is replaced, never served). Builds take a file
lock, so processes starting together (the indexer and the service, two indexer commands) convert
once: the first converts, the others wait for it (and say so) and then use its files. A build
writes into a temporary directory renamed into place, so a killed build leaves nothing
half-written behind (its leftovers are removed by the next build, under the lock). What a build
does is logged at INFO on `router.embedding.derived` ("converting <model> to ONNX once, ~N s",
a line every 15 s while it runs, its time at the end); the indexer shows these on stderr.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from router_core.errors import ModelUnavailable

log = logging.getLogger("router.embedding.derived")
MARKER = "derived.json"
FORMAT = 1
CACHE_SUBDIR = Path("semantic-router") / "models"
LEGACY_ROOT = Path(".router-data") / "models" / "derived"  # when no home directory is known
KIND_NAMES = {"onnx": "ONNX", "int8": "ONNX with int8 weights", "openvino": "OpenVINO IR"}
TICK_S = 15.0  # a "still converting" line this often


def default_root() -> Path:
    """The conversion cache of this machine and user: `$XDG_CACHE_HOME/semantic-router/models`
    (an absolute XDG_CACHE_HOME only, as the XDG spec says), else `~/.cache/semantic-router/models`."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / CACHE_SUBDIR
    try:
        return Path.home() / ".cache" / CACHE_SUBDIR
    except RuntimeError:  # no HOME and no passwd entry: a container's anonymous user
        return LEGACY_ROOT


@dataclass(frozen=True)
class DerivedFiles:
    """A verified cached build: its directory and its marker (what it was built from)."""

    directory: Path
    marker: Mapping[str, Any]
    built_now: bool

    def path(self, name: str) -> Path:
        """One of the built files."""
        return self.directory / name

    @property
    def checksums(self) -> Mapping[str, str]:
        """sha256 of every file, by name."""
        files: Mapping[str, str] = self.marker["files"]
        return files


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def source_stats(model_dir: Path) -> dict[str, list[int]]:
    """Size and modification time of every file of a model directory (dot files aside)."""
    return {
        str(p.relative_to(model_dir)): [p.stat().st_size, p.stat().st_mtime_ns]
        for p in sorted(model_dir.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(model_dir).parts)
    }


def _slug(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model_id.rstrip("/").rsplit("/", 1)[-1])[:60] or "model"


class DerivedCache:
    """The cache of derived model files under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, model_id: str, model_dir: Path) -> Path:
        """Where the derived files of one model live (one folder per model location)."""
        key = hashlib.sha256(f"{model_id}\n{Path(model_dir).resolve()}".encode()).hexdigest()[:10]
        return self.root / f"{_slug(model_id)}-{key}"

    def get(
        self,
        kind: str,
        model_id: str,
        model_dir: Path,
        build: Callable[[Path], Mapping[str, Any]],
        *,
        inputs: Mapping[str, str] | None = None,
    ) -> DerivedFiles:
        """The verified files of `kind` for the model, built by `build(directory)` when missing,
        stale or corrupt. `inputs` (name -> checksum of what the build reads, e.g. the ONNX
        file an IR is converted from) are part of what must match; `build` returns facts to
        record (tool versions)."""
        final = self.folder(model_id, model_dir) / kind
        want = {
            "model_id": model_id,
            "kind": kind,
            "source_files": source_stats(model_dir),
            "inputs": dict(inputs or {}),
        }
        found, why = self._verified(final, want)
        if found is not None:
            return found
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelUnavailable(
                f"cannot create the model conversion cache {final.parent} ({exc.strerror or exc}); "
                "set ROUTER_INDEX__MODELS_DIR to a writable directory"
            ) from exc
        with self._lock(final, f"{model_id} to {KIND_NAMES.get(kind, kind)}"):
            found, why = self._verified(final, want)  # another process may have built it meanwhile
            if found is not None:
                return found
            self._remove_leftovers(final)
            what = f"{model_id} to {KIND_NAMES.get(kind, kind)}"
            log.info(
                "converting %s once, ~%.0f s on an idle machine (%s); cached in %s for every later run",
                what,
                _estimate_s(kind, model_dir, final),
                why,
                final.parent,
            )
            with _ticking(what):
                built = self._build(final, want, build)
            log.info("converted %s in %.1f s", what, built.marker.get("build_s", 0.0))
            return built

    def _verified(self, final: Path, want: Mapping[str, Any]) -> tuple[DerivedFiles | None, str]:
        marker_path = final / MARKER
        if not marker_path.is_file():
            return None, "not built yet"
        try:
            marker = json.loads(marker_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None, "unreadable marker"
        if marker.get("format") != FORMAT or any(marker.get(k) != v for k, v in want.items()):
            return None, "the model files or the inputs changed"
        for name, digest in marker.get("files", {}).items():
            path = final / name
            if not path.is_file() or sha256_file(path) != digest:
                log.warning("cached %s is missing or fails its checksum: rebuilding", path)
                return None, f"{name} failed its checksum"
        if not marker.get("files"):
            return None, "no files recorded"
        return DerivedFiles(final, marker, built_now=False), "ok"

    def _build(self, final: Path, want: Mapping[str, Any], build: Callable[[Path], Mapping[str, Any]]) -> DerivedFiles:
        work = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
        work.mkdir(parents=True)
        try:
            started = time.perf_counter()
            facts = dict(build(work))
            files = {str(p.relative_to(work)): sha256_file(p) for p in sorted(work.rglob("*")) if p.is_file()}
            if not files:
                raise ModelUnavailable(f"building {final.name} for {want['model_id']} wrote no files")
            marker = {
                "format": FORMAT,
                **want,
                "files": files,
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "build_s": round(time.perf_counter() - started, 2),
                **facts,
            }
            (work / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
            if final.exists():  # stale or corrupt: move it aside, then out of the way
                aside = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
                final.rename(aside)
                shutil.rmtree(aside, ignore_errors=True)
            os.replace(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return DerivedFiles(final, marker, built_now=True)

    @staticmethod
    def _remove_leftovers(final: Path) -> None:
        """Temporary directories of builds that were killed (the lock is held: none is running)."""
        for stale in final.parent.glob(f".{final.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)

    @contextlib.contextmanager
    def _lock(self, final: Path, what: str) -> Iterator[None]:
        """The build lock of one kind of files; waiting for it (another process converting) is said."""
        path = final.parent / f".{final.name}.lock"
        try:
            handle = path.open("a")
        except OSError as exc:
            raise ModelUnavailable(
                f"cannot write the model conversion cache {final.parent} ({exc.strerror or exc}); "
                "set ROUTER_INDEX__MODELS_DIR to a writable directory"
            ) from exc
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another process converting %s (%s)", what, path)
                started = time.perf_counter()
                fcntl.flock(handle, fcntl.LOCK_EX)
                log.info("waited %.1f s for %s", time.perf_counter() - started, what)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _estimate_s(kind: str, model_dir: Path, final: Path) -> float:
    """Roughly how long a build takes on an idle machine: the last build of it when the cache
    recorded one, else from the model's size (an ONNX export: ~4.6 s + ~1 s per 100 MB here,
    MiniLM 5.5 s, mpnet 9 s)."""
    try:
        previous = json.loads((final / MARKER).read_text(encoding="utf-8")).get("build_s")
        if isinstance(previous, int | float) and previous > 0:
            return float(previous)
    except (OSError, ValueError):
        pass
    weights = sum(
        p.stat().st_size for p in Path(model_dir).rglob("*") if p.suffix in (".safetensors", ".bin") and p.is_file()
    )
    return 4.6 + 0.0105 * weights / 1e6 * (1.0 if kind == "onnx" else 0.5)


@contextlib.contextmanager
def _ticking(what: str, every_s: float = TICK_S) -> Iterator[None]:
    """A "still converting" line every `every_s` seconds while inside."""
    done = threading.Event()
    started = time.perf_counter()

    def tick() -> None:
        while not done.wait(every_s):
            log.info("still converting %s: %.0f s so far", what, time.perf_counter() - started)

    thread = threading.Thread(target=tick, name="conversion-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
