"""Plain-text tables for the terminal, and the one way shares and gains are written.

Every share (accuracy, precision, recall, F1, the objective) reads as a percentage with one
decimal; a gain in the objective as percentage points with two, with its standard error.
"""

from __future__ import annotations

from collections.abc import Sequence


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, max_width: int = 60) -> str:
    """Columns padded to their widest cell; numbers right-aligned, long cells cut."""
    cells = [[_cell(v, max_width) for v in row] for row in rows]
    numeric = [all(isinstance(row[i], int | float) for row in rows) if rows else False for i in range(len(headers))]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]) for i, v in enumerate(values)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


class Ratio(float):
    """A share: tables show it as a percentage."""


def pct(value: float) -> str:
    """A ratio as a percentage with one decimal."""
    return f"{100 * value:.1f}%"


def points(gain: float, standard_error: float | None = None) -> str:
    """A gain in the objective as signed percentage points, with its standard error if given."""
    text = f"{100 * gain:+.2f}"
    return text if standard_error is None else f"{text} ± {100 * standard_error:.2f}"


def _cell(value: object, max_width: int) -> str:
    if isinstance(value, Ratio):
        return _cut(pct(value), max_width)
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    return _cut(text, max_width)


def _cut(text: str, max_width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= max_width else text[: max_width - 1] + "…"
