"""Generated sections of BENCHMARKS.md, each between its own markers; the rest is kept."""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of section `name`."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(path: Path, name: str, section: str) -> None:
    """Replace section `name` of the Markdown file (or append it); `section` holds its markers."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = markers(name)
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
