"""Files derived from a model (an ONNX export, its int8 version, an OpenVINO IR), built once and
cached under the data directory with a checksum of every file.

    <root>/<model slug>-<hash of the model's location>/<kind>/
        derived.json     what was built, from which model files (size, mtime), with which
                         inputs, and the sha256 of every file
        model.onnx ...   the files themselves

A cached copy is served only when the model's files are unchanged and every checksum holds;
otherwise it is rebuilt (a corrupt or stale copy is replaced, never served). Builds take a file
lock, so the indexer and the service starting together convert once, and write into a temporary
directory renamed into place, so a killed build leaves nothing half-written behind.
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
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from router_core.errors import ModelUnavailable

log = logging.getLogger("router.embedding")
MARKER = "derived.json"
FORMAT = 1


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
        final.parent.mkdir(parents=True, exist_ok=True)
        with self._lock(final):
            found, why = self._verified(final, want)  # another process may have built it meanwhile
            if found is not None:
                return found
            log.info("building %s files for %s (%s) under %s", kind, model_id, why, final)
            return self._build(final, want, build)

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

    @contextlib.contextmanager
    def _lock(self, final: Path) -> Iterator[None]:
        path = final.parent / f".{final.name}.lock"
        with path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
