"""What `eval` and `calibrate` print: shares as percentages, the fallback apart from the routes,
gains as percentage points saying whether they are in-sample or held-out."""

from __future__ import annotations

from typing import TextIO

from indexer.calibration import DEFAULT_GRID, CalibrationResult, Variant
from indexer.evaluation import EvalReport
from indexer.tables import Ratio, pct, points, text_table
from router_core.params import DecisionParams

WORST_ROUTES = 15


def print_eval(report: EvalReport, out: TextIO) -> None:
    """The eval summary, the worst routes, the fallback and the confusions as text tables."""
    print(
        text_table(
            ["measure", "value"],
            [
                (
                    "queries",
                    f"{report.queries} ({report.in_scope} in scope, {report.out_of_scope} out of scope)",
                ),
                ("accuracy (fallback as a class)", pct(report.accuracy)),
                ("in-scope accuracy", pct(report.in_scope_accuracy)),
                ("fallback precision", pct(report.fallback_precision)),
                ("fallback recall", pct(report.fallback_recall)),
            ],
        ),
        file=out,
    )
    worst = [s for s in report.per_route if s.support][:WORST_ROUTES]
    print(
        f"\nroutes: {len(report.per_route)}; the {len(worst)} worst by F1 (--json for every route):",
        file=out,
    )
    print(
        text_table(
            ["route", "precision", "recall", "F1", "labelled", "decided"],
            [(s.route, Ratio(s.precision), Ratio(s.recall), Ratio(s.f1), s.support, s.predicted) for s in worst],
        ),
        file=out,
    )
    fb = report.fallback
    print(
        f"\nfallback (default route {report.default_route!r}): precision {pct(fb.precision)}, "
        f"recall {pct(fb.recall)}; {fb.support} queries labelled out of scope, {fb.predicted} fell back",
        file=out,
    )
    _print_confusions(report, out)
    if report.unknown_labels:
        print(f"\nwarning: labels naming no route: {', '.join(report.unknown_labels[:10])}", file=out)


def _print_confusions(report: EvalReport, out: TextIO) -> None:
    print("\nmost confused route pairs (labelled -> decided):", file=out)
    print(
        text_table(
            ["labelled", "decided", "queries", "example"],
            [(c.gold, c.predicted, c.count, c.examples[0] if c.examples else "") for c in report.route_confusions[:10]],
        ),
        file=out,
    )
    rejected = [c for c in report.confusions if c.predicted == report.default_route][:5]
    accepted = [c for c in report.confusions if c.gold == report.default_route][:5]
    for title, column, rows in (
        ("in-scope queries that fell back", "labelled", [(c.gold, c) for c in rejected]),
        ("out-of-scope queries that were routed", "decided", [(c.predicted, c) for c in accepted]),
    ):
        if rows:
            print(f"\n{title}, by route:", file=out)
            print(
                text_table(
                    [column, "queries", "example"],
                    [(route, c.count, c.examples[0] if c.examples else "") for route, c in rows],
                ),
                file=out,
            )


def print_calibration(result: CalibrationResult, out: TextIO) -> None:
    """The calibration headline (given -> calibrated, held-out estimate), the variants, the
    per-route thresholds and the chosen parameters."""
    s = result.oos_share
    print(
        f"objective: weighted accuracy, fallback as a class; out-of-scope queries weigh "
        f"{result.oos_weight:.2f} each ({result.out_of_scope} of {result.queries} in the file), i.e. "
        f"{1 - s:.2f} x in-scope accuracy + {s:.2f} x fallback recall",
        file=out,
    )
    print_headline(result, out)
    grid = DEFAULT_GRID
    print(
        "\ndecision-rule variants, simple to rich: the best setting of each on this file. Gains are in "
        "objective points, in-sample (on the whole file the settings were picked on) over the setting "
        "adopted before (the given parameters until one is) or held-out (picked on one half of the "
        f"file, scored on the other). A variant, the first included, is adopted when its gain is >= "
        f"{grid.min_variant_gain * 100:g} points and >= {grid.significance:g} standard errors, else it is "
        "within noise; per-route thresholds are kept when their held-out gain passes the same test. "
        "'nothing better': the variant's best is the setting already adopted.",
        file=out,
    )
    print(
        text_table(
            [
                "variant",
                "verdict",
                "gain in-sample",
                "gain held-out",
                "setting",
                "objective",
                "in-scope acc",
                "fallback recall",
                f"fallback prec at {pct(s)} oos",
            ],
            [_variant_row(v) for v in result.variants],
            max_width=70,
        ),
        file=out,
    )
    _print_route_thresholds(result, out)
    p = result.params
    if not result.changed:
        print(f"\nnothing beat the given parameters by that test: they stand ({p.describe()}).", file=out)
    else:
        _print_chosen(result, out)
    if result.engine_mismatches:
        print(
            f"warning: the fast engine disagreed with decide() on {result.engine_mismatches} "
            "queries; figures above are decide()'s",
            file=out,
        )


def _print_chosen(result: CalibrationResult, out: TextIO) -> None:
    p, b, c, s = result.params, result.baseline, result.scores, result.oos_share
    print(
        f"\nchosen: {p.describe()}\n"
        f"  objective {pct(b.objective)} -> {pct(c.objective)}, "
        f"in-scope accuracy {pct(b.in_scope_accuracy)} -> {pct(c.in_scope_accuracy)}, "
        f"fallback recall {pct(b.fallback_recall)} -> {pct(c.fallback_recall)}, "
        f"fallback precision at {pct(s)} out of scope {pct(b.fallback_precision)} -> {pct(c.fallback_precision)} "
        f"(on this file's own mix {pct(c.fallback_precision_in_file)})",
        file=out,
    )


def print_headline(result: CalibrationResult, out: TextIO) -> None:
    """Given and calibrated objective on the file, and the held-out estimate of the gain."""
    if result.threshold_held:
        print(
            f"threshold kept as given ({result.params.threshold:g}, {result.params.threshold_mode} mode"
            + (", per-route thresholds as given" if result.params.route_thresholds else "")
            + "): no out-of-scope query to set it",
            file=out,
        )
    print(
        f"\n  given parameters   objective {pct(result.baseline.objective)}\n"
        f"  calibrated         objective {pct(result.objective)} on this file: {points(result.gain)} points "
        "(in-sample, flattering: picked on these queries)",
        file=out,
    )
    if result.heldout_total_gain is not None:
        print(
            f"  held-out estimate  {points(result.heldout_total_gain, result.heldout_total_standard_error)} points "
            "over the given parameters (calibrated on one half of the file, scored on the other, both ways): "
            "what to expect on new queries",
            file=out,
        )


def _variant_row(v: Variant) -> tuple[object, ...]:
    held = "" if v.heldout_gain is None else points(v.heldout_gain, v.heldout_standard_error)
    if v.name == "given parameters":
        return (v.name, v.verdict, "", "", compact(v.params), *_shares(v))
    if not v.new:
        return (v.name, v.verdict, "", held, "(as above)", "", "", "", "")
    # The per-route row's in-sample gain has no paired error of its own: its held-out one decides.
    gain = points(v.gain) if v.heldout_gain is not None else points(v.gain, v.standard_error)
    return (v.name, v.verdict, gain, held, compact(v.params), *_shares(v))


_SHORT = {"threshold": "thr", "threshold_mode": "mode", "tie_break": "tie"}


def compact(params: DecisionParams) -> str:
    """The tunable values in a table cell: `k=5 thr=0.45 mode=neighbour ...`."""
    parts = [
        f"{_SHORT.get(name, name)}={value:g}" if isinstance(value, float) else f"{_SHORT.get(name, name)}={value}"
        for name, value in params.tunable_values().items()
    ]
    if params.route_thresholds:
        parts.append(f"+{len(params.route_thresholds)} route thr")
    return " ".join(parts)


def _shares(v: Variant) -> tuple[Ratio, ...]:
    s = v.scores
    return (Ratio(s.objective), Ratio(s.in_scope_accuracy), Ratio(s.fallback_recall), Ratio(s.fallback_precision))


def _print_route_thresholds(result: CalibrationResult, out: TextIO) -> None:
    if result.threshold_held:
        print("\nper-route thresholds: not searched (the threshold is kept as given)", file=out)
        return
    kept = [r for r in result.route_thresholds if r.offset]
    verdict = "kept" if result.route_thresholds_kept else "not kept"
    print(
        f"\nper-route thresholds: {verdict}; held-out gain "
        f"{points(result.heldout_gain, result.heldout_standard_error)} points (two-fold on this file); "
        f"{len(kept)} route(s) moved from the global threshold",
        file=out,
    )
    if kept:
        print(
            text_table(
                ["route", "labelled", "threshold offset", "weighted queries gained (in-sample)"],
                [(r.route, r.support, f"{r.offset:+.2f}", f"{r.gain:.1f}") for r in kept[:WORST_ROUTES]],
            ),
            file=out,
        )
