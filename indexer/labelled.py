"""Labelled queries from JSON Lines files; the parsing and label rules live in
`router_core.labelled` (the service evaluates posted queries with the same code)."""

from __future__ import annotations

from pathlib import Path

from router_core.labelled import (
    OOS_LABEL,
    UNKNOWN,
    LabelledDataInvalid,
    LabelledQuery,
    canonical_labels,
    gold_ids,
    is_fallback_label,
    parse_labelled,
    route_name_for,
    split_lines,
)

__all__ = [
    "OOS_LABEL",
    "UNKNOWN",
    "LabelledDataInvalid",
    "LabelledQuery",
    "canonical_labels",
    "gold_ids",
    "is_fallback_label",
    "load_labelled",
    "route_name_for",
]


def load_labelled(path: Path | str) -> list[LabelledQuery]:
    """Read a JSON Lines file; raise LabelledDataInvalid naming the first bad line."""
    source = Path(path)
    try:
        lines = split_lines(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelledDataInvalid(f"cannot read {source}: {exc}") from exc
    return parse_labelled(lines, where=source.name, source=str(source))
