"""Self-contained HTML reports with inline SVG plots (no plotting library, no scripts)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from indexer.calibration import CalibrationResult, Scores
from indexer.evaluation import CurvePoint, EvalReport, RouteScore
from indexer.hygiene import HygieneReport
from indexer.tables import Ratio, pct, points
from router_core import curve_svg
from router_core.params import TUNABLE_NAMES

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 8px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.kpi{display:inline-block;margin:0 1.5em 1em 0}.kpi b{display:block;font-size:1.6em}
.muted{color:#777}svg text{font:11px system-ui,sans-serif}
"""
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def page(title: str, body: str) -> str:
    """A complete HTML document."""
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style><body><h1>{escape(title)}</h1>{body}</body></html>\n"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An HTML table; numbers right-aligned, shares (`Ratio`) as percentages, other floats with
    three decimals."""

    def cell(tag: str, v: object) -> str:
        if isinstance(v, Ratio):
            return f"<{tag} class=n>{pct(v)}</{tag}>"
        if isinstance(v, float):
            return f"<{tag} class=n>{v:.3f}</{tag}>"
        if isinstance(v, int):
            return f"<{tag} class=n>{v}</{tag}>"
        return f"<{tag}>{escape(str(v))}</{tag}>"

    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell("td", v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def kpis(items: Mapping[str, str]) -> str:
    """Headline figures."""
    return "".join(f"<span class=kpi><b>{escape(v)}</b>{escape(k)}</span>" for k, v in items.items())


def heatmap(rows: Sequence[str], cols: Sequence[str], counts: Sequence[Sequence[int]]) -> str:
    """A confusion matrix: rows are gold routes, columns predictions, shaded by row share."""
    cell = 26
    left = 10 + 7 * max((len(r) for r in rows), default=4)
    top = 10 + 6 * max((len(c) for c in cols), default=4)
    width, height = left + cell * len(cols) + 10, top + cell * len(rows) + 10
    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="confusion matrix">']
    for j, c in enumerate(cols):
        x = left + j * cell + cell / 2
        parts.append(f'<text x="{x}" y="{top - 6}" transform="rotate(-60 {x} {top - 6})">{escape(c)}</text>')
    for i, r in enumerate(rows):
        y = top + i * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end">{escape(r)}</text>')
        total = sum(counts[i]) or 1
        for j, value in enumerate(counts[i]):
            share = value / total
            shade = "#2166ac" if i == j else "#b2182b"
            parts.append(
                f'<rect x="{left + j * cell}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="{shade}" fill-opacity="{0.08 + 0.92 * share:.2f}"><title>{escape(r)} → '
                f"{escape(cols[j])}: {value}</title></rect>"
            )
            if value:
                colour = "#fff" if share > 0.5 else "#000"
                parts.append(
                    f'<text x="{left + j * cell + cell / 2}" y="{y + cell / 2 + 4}" '
                    f'text-anchor="middle" fill="{colour}">{value}</text>'
                )
    parts.append("</svg>")
    return "".join(parts)


def confusion_of_worst(
    report: EvalReport, gold: Sequence[str], predicted: Sequence[str], worst: int = 12
) -> tuple[list[str], list[str], list[list[int]]]:
    """The confusion matrix restricted to the lowest-F1 routes, plus "other" and fallback."""
    fallback = report.default_route
    chosen = [s.route for s in report.per_route if s.route != fallback and s.support][:worst]
    chosen.sort()
    rows = [*chosen, fallback]
    cols = [*chosen, fallback, "(other)"]
    pairs = Counter(zip(gold, predicted, strict=True))
    index = {c: i for i, c in enumerate(cols)}
    matrix = [[0] * len(cols) for _ in rows]
    for (g, p), n in pairs.items():
        if g not in rows:
            continue
        matrix[rows.index(g)][index.get(p, len(cols) - 1)] += n
    return rows, cols, matrix


def eval_page(
    report: EvalReport,
    curve: Sequence[CurvePoint],
    gold: Sequence[str],
    predicted: Sequence[str],
    meta: Mapping[str, Any],
) -> str:
    """The `eval` report."""
    body = [f"<p class=muted>{escape(_meta_line(meta))}</p>"]
    body.append(
        kpis(
            {
                "accuracy (fallback as a class)": pct(report.accuracy),
                "in-scope accuracy": pct(report.in_scope_accuracy),
                "fallback recall": pct(report.fallback_recall),
                "fallback precision": pct(report.fallback_precision),
                "queries": f"{report.queries} ({report.out_of_scope} out of scope)",
            }
        )
    )
    threshold = meta.get("params", {}).get("threshold")
    body.append("<h2>Accuracy and fallback recall against the threshold</h2>")
    body.append(_curve_chart(curve, threshold))
    rows, cols, matrix = confusion_of_worst(report, gold, predicted)
    body.append("<h2>Confusion matrix of the worst routes</h2>")
    body.append("<p class=muted>Rows: labelled route; columns: decision. The routes with the lowest F1.</p>")
    body.append(heatmap(rows, cols, matrix))
    body.append("<h2>Most confused pairs</h2>")
    body.append(
        table(
            ["labelled", "decided", "queries", "examples"],
            [(c.gold, c.predicted, c.count, " | ".join(c.examples)) for c in report.confusions[:25]],
        )
    )
    body.append(f"<h2>Per route: {len(report.per_route)} routes, worst F1 first</h2>")
    headers = ["route", "precision", "recall", "F1", "labelled", "decided"]
    body.append(table(headers, [_route_row(s) for s in report.per_route]))
    body.append(f"<h2>Fallback (default route {escape(report.default_route)})</h2>")
    body.append(table(headers, [_route_row(report.fallback)]))
    if report.unknown_labels:
        body.append(f"<p>Labels naming no route: {escape(', '.join(report.unknown_labels))}</p>")
    return page("Routing evaluation", "".join(body))


def _route_row(s: RouteScore) -> tuple[object, ...]:
    return (s.route, Ratio(s.precision), Ratio(s.recall), Ratio(s.f1), s.support, s.predicted)


def calibration_page(result: CalibrationResult, curve: Sequence[CurvePoint], meta: Mapping[str, Any]) -> str:
    """The `calibrate` report."""
    p = result.params
    body = [f"<p class=muted>{escape(_meta_line(meta))}</p>"]
    body.append(
        "<p><b>Objective</b>: weighted accuracy with fallback as a class; each in-scope query "
        f"weighs 1, each out-of-scope query {result.oos_weight:.2f}, so out-of-scope queries make "
        f"up {pct(result.oos_share)} of the objective (the file holds "
        f"{result.out_of_scope} of {result.queries}). Equivalently "
        f"{1 - result.oos_share:.2f} × in-scope accuracy + {result.oos_share:.2f} × fallback recall.</p>"
    )
    b, c = result.baseline, result.scores
    headline = {}
    if result.heldout_total_gain is not None:
        gain = points(result.heldout_total_gain, result.heldout_total_standard_error)
        headline["objective gain, held-out estimate (points)"] = gain
    headline |= {
        "objective on this file, given → calibrated (in-sample)": f"{pct(b.objective)} → {pct(c.objective)}",
        "in-scope accuracy": f"{pct(b.in_scope_accuracy)} → {pct(c.in_scope_accuracy)}",
        "fallback recall": f"{pct(b.fallback_recall)} → {pct(c.fallback_recall)}",
        f"fallback precision at {pct(result.oos_share)} out of scope": (
            f"{pct(b.fallback_precision)} → {pct(c.fallback_precision)}"
        ),
    }
    body.append(kpis(headline))
    body.append("<h2>Chosen parameters</h2>")
    body.append(
        table(
            ["parameter", "value"],
            [*p.tunable_values().items(), ("per-route thresholds", len(p.route_thresholds))],
        )
    )
    body.append("<h2>Decision-rule variants (best of each family on this file)</h2>")
    body.append(_variants_table(result))
    body.append("<h2>Accuracy and fallback recall against the threshold (other parameters as chosen)</h2>")
    body.append(_curve_chart(curve, p.threshold))
    body.append("<h2>Per-route thresholds</h2>")
    verdict = "kept" if result.route_thresholds_kept else "not kept"
    body.append(
        f"<p>Held-out check (two-fold on this file): "
        f"{points(result.heldout_gain, result.heldout_standard_error)} objective points; "
        f"per-route thresholds {verdict}.</p>"
    )
    body.append(
        table(
            ["route", "labelled", "best offset", "kept offset", "gain (weighted queries)"],
            [(r.route, r.support, r.best_offset, r.offset, r.gain) for r in result.route_thresholds],
        )
    )
    body.append("<h2>Best settings tried</h2>")
    top = sorted(result.table, key=lambda t: -t.scores.objective)[:30]
    body.append(
        table(
            [*TUNABLE_NAMES, "objective", "accuracy", "in-scope", "fallback recall"],
            [
                (
                    *t.params.tunable_values().values(),
                    Ratio(t.scores.objective),
                    Ratio(t.scores.accuracy),
                    Ratio(t.scores.in_scope_accuracy),
                    Ratio(t.scores.fallback_recall),
                )
                for t in top
            ],
        )
    )
    return page("Routing calibration", "".join(body))


def hygiene_page(report: HygieneReport, meta: Mapping[str, Any]) -> str:
    """The `hygiene` report."""
    body = [f"<p class=muted>{escape(_meta_line(meta))}</p>"]
    body.append(
        kpis(
            {
                "routes": str(report.routes),
                "examples": str(report.examples),
                "misplaced examples": str(len(report.misplaced)),
                "near-duplicates across routes": str(len(report.near_duplicates)),
                f"routes under {report.min_examples} examples": str(len(report.small_routes)),
            }
        )
    )
    body.append("<h2>Examples nearer to another route</h2>")
    body.append(
        table(
            [
                "route",
                "example",
                "flagged by",
                "nearest example's route",
                "nearest example",
                "similarity",
                "own centroid",
                "other centroid",
                "its similarity",
            ],
            [
                (
                    m.route,
                    m.text,
                    m.by,
                    m.nearest_route,
                    m.nearest_text,
                    m.nearest_similarity,
                    "" if m.own_centroid_similarity is None else m.own_centroid_similarity,
                    m.other_centroid,
                    m.other_centroid_similarity,
                )
                for m in report.misplaced[:300]
            ],
        )
    )
    body.append(f"<h2>Near-duplicates across routes (cosine ≥ {report.duplicate_similarity})</h2>")
    body.append(
        table(
            ["similarity", "route", "example", "other route", "other example"],
            [(d.similarity, d.route_a, d.text_a, d.route_b, d.text_b) for d in report.near_duplicates[:300]],
        )
    )
    body.append(f"<h2>Routes with fewer than {report.min_examples} examples</h2>")
    body.append(table(["route", "examples"], list(report.small_routes)))
    return page("Route hygiene", "".join(body))


def _variants_table(result: CalibrationResult) -> str:
    rows = []
    for v in result.variants:
        held = "" if v.heldout_gain is None else points(v.heldout_gain, v.heldout_standard_error)
        if v.name == "given parameters":
            rows.append((v.name, v.verdict, "", "", v.params.describe(), *_score_cells(v.scores)))
        elif not v.new:
            rows.append((v.name, v.verdict, "", held, "(as above)", "", "", "", "", ""))
        else:
            gain = points(v.gain) if v.heldout_gain is not None else points(v.gain, v.standard_error)
            rows.append((v.name, v.verdict, gain, held, v.params.describe(), *_score_cells(v.scores)))
    return table(
        [
            "variant",
            "verdict",
            "gain in-sample (points)",
            "gain held-out (points)",
            "setting",
            "objective",
            "accuracy",
            "in-scope",
            "fallback recall",
            f"fallback precision at {pct(result.oos_share)} out of scope",
        ],
        rows,
    )


def _score_cells(s: Scores) -> tuple[Ratio, ...]:
    return (
        Ratio(s.objective),
        Ratio(s.accuracy),
        Ratio(s.in_scope_accuracy),
        Ratio(s.fallback_recall),
        Ratio(s.fallback_precision),
    )


def _curve_chart(curve: Sequence[CurvePoint], marker: float | None) -> str:
    return curve_svg(curve, marker)


def _meta_line(meta: Mapping[str, Any]) -> str:
    return " · ".join(f"{k}: {v}" for k, v in meta.items() if k != "params")
