"""Labelled queries: JSON Lines of `{"text": ..., "label": ...}` for evaluation and calibration.

Pure (no file access): the indexer reads files, the service request bodies, both through
`parse_labelled`, so both read the same lines alike.

The label `oos` (out of scope), or the router's default route name, means "should fall back".
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from router_core.engine import FALLBACK
from router_core.neighbours import IntArray, NeighbourArrays

OOS_LABEL = "oos"
UNKNOWN = -2
"""The gold id of a label that names no route of the index (never predicted)."""


class LabelledDataInvalid(ValueError):
    """A labelled file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class LabelledQuery:
    """One query and the route it should reach (`oos` or the default route: fall back)."""

    text: str
    label: str


def split_lines(text: str) -> list[str]:
    """The lines of JSON Lines text: split on "\\n" only. (`str.splitlines` also splits on
    U+2028 and other separators, which a JSON string may hold raw.) A "\\r" left at a line's end
    is JSON whitespace."""
    return text.split("\n")


def read_json_line(line: str, at: str) -> Any:
    """The JSON value of one line, or LabelledDataInvalid naming `at` (file and line) and why:
    malformed, nested too deeply to decode, or a number too long to read."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise LabelledDataInvalid(f"{at}: invalid JSON: {exc.msg}") from exc
    except RecursionError:
        raise LabelledDataInvalid(f"{at}: invalid JSON: nested too deeply to decode") from None
    except ValueError as exc:  # an integer of more than 4,300 digits (sys.get_int_max_str_digits)
        reason = str(exc).split(":", 1)[0]
        raise LabelledDataInvalid(f"{at}: invalid JSON: a number too long to read ({reason})") from None


def check_text(value: str, at: str, field: str) -> None:
    """LabelledDataInvalid when `value` is not valid Unicode text: a lone surrogate (a JSON
    escape such as "\\ud800" decodes to one) cannot be tokenized."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(value[exc.start])
        raise LabelledDataInvalid(
            f"{at}: {field!r} holds a lone surrogate (\\u{code:04x}) at character {exc.start}: not valid text"
        ) from None


def parse_labelled(lines: Iterable[str], *, where: str, source: str | None = None) -> list[LabelledQuery]:
    """Labelled queries from JSON Lines; raise LabelledDataInvalid naming the first bad line.

    `where` names the lines in messages ("evals.jsonl" gives "evals.jsonl line 3: ..."),
    `source` the whole input when it holds no query (defaults to `where`). Blank lines are
    skipped; runs of whitespace in a text become one space. Split text with `split_lines`.
    """
    queries: list[LabelledQuery] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        at = f"{where} line {number}"
        row = read_json_line(line, at)
        if not isinstance(row, dict):
            raise LabelledDataInvalid(f"{at}: expected an object with 'text' and 'label'")
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str) or not text.strip():
            raise LabelledDataInvalid(f"{at}: 'text' must be a non-empty string")
        if not isinstance(label, str) or not label.strip():
            raise LabelledDataInvalid(f"{at}: 'label' must be a non-empty string")
        check_text(text, at, "text")
        check_text(label, at, "label")
        queries.append(LabelledQuery(" ".join(text.split()), label.strip()))
    if not queries:
        raise LabelledDataInvalid(f"{source or where} holds no labelled queries")
    return queries


def is_fallback_label(label: str, default_route: str) -> bool:
    """Whether a gold label means the query should reach the default route."""
    return label in (OOS_LABEL, default_route)


def route_name_for(label: str) -> str:
    """The route name a label becomes: lower case, other characters as `_`, at most 64."""
    name = re.sub(r"[^a-z0-9_-]+", "_", label.strip().lower())
    name = re.sub(r"^[^a-z0-9]+", "", name)[:64].rstrip("_-")
    return name or "route"


def canonical_labels(queries: Sequence[LabelledQuery], routes: Collection[str], default_route: str) -> list[str]:
    """Gold labels as route names: a label naming no route but whose route-name form does
    (as `python -m indexer import` writes it) is mapped to that route."""
    out = []
    for q in queries:
        label = q.label
        if label not in routes and not is_fallback_label(label, default_route):
            candidate = route_name_for(label)
            label = candidate if candidate in routes else label
        out.append(label)
    return out


def gold_ids(arrays: NeighbourArrays, labels: Sequence[str], default_route: str) -> IntArray:
    """Route id per gold label: FALLBACK for `oos` or the default route, UNKNOWN for others."""
    out = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        if is_fallback_label(label, default_route):
            out[i] = FALLBACK
        else:
            rid = arrays.route_id(label)
            out[i] = UNKNOWN if rid is None else rid
    return out
