"""The accuracy and fallback curves over the threshold, as a small self-contained SVG: the one
chart of the threshold curve, in the playground's evaluation panel and the indexer's HTML reports."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from router_core.evaluation import CurvePoint

SERIES = (
    ("accuracy", "#1f5fa8", ""),
    ("in-scope accuracy", "#2b8a3e", "6 3"),
    ("fallback recall", "#c0392b", ""),
    ("fallback precision", "#8e44ad", "2 3"),
)


def _values(point: CurvePoint) -> tuple[float, float, float, float]:
    return (point.accuracy, point.in_scope_accuracy, point.fallback_recall, point.fallback_precision)


def curve_svg(curve: Sequence[CurvePoint], threshold: float | None, *, width: int = 640, height: int = 300) -> str:
    """Lines of accuracy, in-scope accuracy, fallback recall and precision against the global
    threshold (y from 0 to 1), with `threshold` marked (None: no mark); no scripts, no external refs."""
    if not curve:
        return ""
    left, right, top, bottom = 44, 150, 12, 40
    x0, x1 = curve[0].threshold, curve[-1].threshold
    span = (x1 - x0) or 1.0
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / span * pw

    def py(y: float) -> float:
        return top + (1 - y) * ph

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="system-ui,sans-serif" font-size="11">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#bbb"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = py(tick)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
    step = max(1, len(curve) // 8)
    for point in curve[::step]:
        x = px(point.threshold)
        parts.append(f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle">{point.threshold:.2f}</text>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">global threshold</text>')
    if threshold is not None and x0 <= threshold <= x1:
        x = px(threshold)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" stroke="#555" stroke-dasharray="4 3"/>'
            f'<text x="{x + 4:.1f}" y="{top + 12}">threshold {threshold:.2f}</text>'
        )
    for i, (name, colour, dash) in enumerate(SERIES):
        points = " ".join(f"{px(p.threshold):.1f},{py(_values(p)[i]):.1f}" for p in curve)
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dashed}/>')
        ly = top + 14 + i * 18
        lx = left + pw + 12
        parts.append(
            f'<line x1="{lx}" x2="{lx + 20}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"{dashed}/>'
            f'<text x="{lx + 26}" y="{ly}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
