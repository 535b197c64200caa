"""Which files of a routes directory are read, and how: regular files inside it, bounded.

A routes directory is untrusted: besides route files it may hold hidden files, editor
leftovers, symbolic links to anywhere, FIFOs or device files. Hidden files (`.name`, which
covers `._maths.yaml` and `.#coding.yaml`) and editor leftovers (`#name#`, `name~`, `name~.yaml`) are
ignored. Everything else named `*.yaml` / `*.yml` is read only when it is a regular file that
resolves inside the directory and is no larger than the limit; otherwise it is refused with a
reason, without reading it (a FIFO never blocks the reader, `/dev/zero` is never read).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

SUFFIXES = (".yaml", ".yml")
_CHUNK = 1 << 16


class FileRefused(Exception):
    """A file in the routes directory that is not read; the message says why."""


def is_ignored(name: str) -> bool:
    """Hidden files and editor leftovers, which are never route files."""
    return name.startswith((".", "#", "~")) or name.endswith(("~", "#")) or Path(name).stem.endswith("~")


def candidate_files(root: Path) -> list[Path]:
    """The entries of `root` that are meant as route files, sorted by name (not yet checked)."""
    return sorted(p for p in root.iterdir() if p.suffix in SUFFIXES and not is_ignored(p.name))


def read_bounded(
    root: Path,
    path: Path,
    max_bytes: int,
    *,
    directory: str = "the routes directory",
    limit_name: str = "ROUTER_ROUTE_FILES__MAX_FILE_BYTES",
) -> str:
    """The UTF-8 text of `path`, a regular file inside `root` of at most `max_bytes` bytes;
    FileRefused naming the reason otherwise (`directory` and `limit_name` name what `root`
    is and the setting of the limit)."""
    inside = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(inside):
        raise FileRefused(f"a symbolic link leading outside {directory}: not read")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(real, flags)  # O_NONBLOCK: opening a FIFO returns at once
    except OSError as exc:
        raise FileRefused(f"cannot open: {exc.strerror or type(exc).__name__}") from exc
    try:
        info = os.fstat(fd)  # of what was opened, not of what the name pointed to before
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"not a regular file ({_kind(info.st_mode)}): not read")
        if info.st_size > max_bytes:
            raise FileRefused(f"{info.st_size} bytes; the limit is {max_bytes} ({limit_name})")
        data = _read_at_most(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise FileRefused(f"more than {max_bytes} bytes ({limit_name})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"not UTF-8 text (invalid byte at offset {exc.start})") from exc


def is_regular_inside(root: Path, path: Path) -> bool:
    """`path` resolves to a regular file inside `root` (checked without opening it, so a FIFO
    never blocks; reading checks again, on what it opened)."""
    try:
        real = Path(os.path.realpath(path))
        return real.is_relative_to(Path(os.path.realpath(root))) and stat.S_ISREG(os.stat(real).st_mode)
    except OSError:
        return False


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(_CHUNK, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"
