"""Labelled queries from JSON Lines files; the parsing and label rules live in
`router_core.labelled` (the service evaluates posted queries with the same code)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from router_core import RouteTable

__all__ = [
    "OOS_LABEL",
    "UNKNOWN",
    "Labelled",
    "LabelledDataInvalid",
    "LabelledQuery",
    "canonical_labels",
    "gold_ids",
    "is_fallback_label",
    "labelled_for",
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


@dataclass(frozen=True)
class Labelled:
    """Labelled queries against one route table: texts, gold labels as route names, the routes."""

    texts: list[str]
    labels: list[str]
    routes: list[str]


def labelled_for(table: RouteTable, queries: Sequence[LabelledQuery]) -> Labelled:
    """The queries' gold labels as the table's route names (or a fallback label)."""
    names = [r.name for r in table.routes]
    labels = canonical_labels(queries, set(names), table.params.default_route)
    return Labelled([q.text for q in queries], labels, names)
