"""Run the commands the indexer prints ("next: ...") as a user pasting them would."""

from __future__ import annotations

import io
import os
import shlex
import sys
from pathlib import Path

from indexer.cli import main as indexer_main
from router_core import Embedder


def printed_commands(text: str) -> list[str]:
    """Every `<python> -m indexer ...` command in the output, in order (backquotes stripped)."""
    found = []
    for line in text.splitlines():
        for part in line.split("`"):
            start = part.find(" -m indexer ")
            if start < 0:
                continue
            begin = part.rfind(" ", 0, start) + 1  # the interpreter, a word of its own
            found.append(part[begin:].strip())
    return found


def paste(
    command: str,
    *,
    embedder: Embedder | None = None,
    out: io.StringIO | None = None,
    cwd: Path | None = None,
) -> int:
    """Run one printed command through `main` as the shell would split it; the interpreter it
    names must be this one (absolute, or relative to `cwd`, by default the working directory)."""
    words = shlex.split(command)
    assert words[1:3] == ["-m", "indexer"], command
    assert os.path.samefile((cwd or Path.cwd()) / words[0], sys.executable), command
    return indexer_main(words[3:], out=out or io.StringIO(), embedder=embedder)
