"""The route-tooling subcommands: eval, calibrate, hygiene, finetune, import.

Each prints readable tables and returns an exit code; `--json` and `--html` write reports.
They run against the live index built from the routes directory (build it with
`python -m indexer`); a live index that no longer matches the routes is reported.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from indexer import report_html
from indexer.calibration import DEFAULT_GRID, CalibrationResult, calibrate
from indexer.evaluation import EvalReport, evaluate, neighbours_for, threshold_curve
from indexer.finetune import FinetuneConfig, finetune
from indexer.hygiene import check_hygiene
from indexer.importer import write_routes_from_jsonl
from indexer.labelled import (
    LabelledDataInvalid,
    canonical_labels,
    is_fallback_label,
    load_labelled,
)
from indexer.routes_writer import write_decision_params
from indexer.tables import pct, text_table
from router_core import Embedder, IndexMissing, OpenIndex, RouterSettings, load_embedder, load_routes, open_store
from router_core.decision import decide_many
from router_core.manifest import fingerprint

CURVE_THRESHOLDS = tuple(round(0.10 + 0.01 * i, 2) for i in range(81))
# A file named like a test split (test.jsonl, shipped-test.jsonl, testset...), not latest.jsonl.
_TEST_FILE = re.compile(r"(?<![a-z])test")


class CommandRefused(Exception):
    """A command that will not run as asked (exit code 2); the message says why."""


@dataclass(frozen=True)
class Live:
    """The opened live index and what the commands print about it."""

    index: OpenIndex
    embedder: Embedder

    @property
    def meta(self) -> dict[str, Any]:
        """Where the figures come from."""
        m = self.index.manifest
        return {
            "index version": m.version,
            "model": m.model_id,
            "examples": m.points,
            "routes": len(self.index.table.routes),
        }


@contextmanager
def live_index(settings: RouterSettings, embedder: Embedder | None, out: TextIO) -> Iterator[Live]:
    """Open the live version; warn when it was built from other routes or another model."""
    model = embedder or load_embedder(
        settings.embedding.model, backend=settings.embedding.backend, device=settings.embedding.device
    )
    store = open_store(settings.index)
    try:
        live = store.live_version()
        if live is None:
            raise IndexMissing(
                f"no live index for {settings.routes_dir}: build it first with "
                f"`python -m indexer --routes {settings.routes_dir} --data-dir {settings.index.data_dir}`"
            )
        index = store.open_version(live)
        try:
            _warn_if_stale(settings, index, model, out)
            yield Live(index, model)
        finally:
            index.close()
    finally:
        store.close()


def _warn_if_stale(settings: RouterSettings, index: OpenIndex, embedder: Embedder, out: TextIO) -> None:
    m = index.manifest
    if m.model_id != embedder.model_id:
        raise CommandRefused(
            f"the live index was built with model {m.model_id!r}, not {embedder.model_id!r}; "
            "pass --model to match it or re-index"
        )
    table = load_routes(settings.routes_dir, settings.route_files.policy())
    if fingerprint(m.model_id, m.dimension, table) != m.fingerprint:
        print(
            f"warning: live index {m.version} was not built from the current {settings.routes_dir}; "
            "run `python -m indexer` to refresh it. Figures below are for the live index.",
            file=out,
        )


# -- eval -------------------------------------------------------------------------------------
def run_eval(
    settings: RouterSettings,
    file: Path,
    *,
    json_path: Path | None,
    html_path: Path | None,
    progress: bool,
    out: TextIO,
    embedder: Embedder | None = None,
) -> int:
    """`eval FILE.jsonl`."""
    queries = load_labelled(file)
    with live_index(settings, embedder, out) as live:
        params = live.index.table.params
        names = [r.name for r in live.index.table.routes]
        texts = [q.text for q in queries]
        labels = canonical_labels(queries, set(names), params.default_route)
        print(f"evaluating {len(queries)} queries from {file} on index {live.index.version}", file=out)
        neighbours = neighbours_for(
            live.embedder,
            live.index,
            texts,
            params.k,
            settings.embedding.batch_size,
            progress=progress,
        )
        decisions = decide_many(neighbours, params)
        report = evaluate(decisions, labels, params.default_route, texts=texts, routes=names)
        print_eval(report, out)
        meta = {**live.meta, "file": str(file), "params": params.to_dict()}
        if json_path:
            _write_json(json_path, {"meta": meta, "report": report.to_dict()}, out)
        if html_path:
            curve = threshold_curve(neighbours, labels, params, CURVE_THRESHOLDS, names)
            predicted = [d.route for d in decisions]
            fallback = params.default_route
            gold = [fallback if is_fallback_label(g, fallback) else g for g in labels]
            _write_text(html_path, report_html.eval_page(report, curve, gold, predicted, meta), out)
    return 0


def print_eval(report: EvalReport, out: TextIO) -> None:
    """The eval summary as text tables."""
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
    worst = [s for s in report.per_route if s.support][:15]
    print(f"\nworst routes by F1 ({len(report.per_route)} in all; --json for every route):", file=out)
    print(
        text_table(
            ["route", "precision", "recall", "F1", "labelled", "decided"],
            [(s.route, s.precision, s.recall, s.f1, s.support, s.predicted) for s in worst],
        ),
        file=out,
    )
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
    if report.unknown_labels:
        print(f"\nwarning: labels naming no route: {', '.join(report.unknown_labels[:10])}", file=out)


# -- calibrate --------------------------------------------------------------------------------
def run_calibrate(
    settings: RouterSettings,
    file: Path,
    *,
    write: bool,
    oos_weight: float | None,
    oos_share: float,
    allow_test: bool,
    json_path: Path | None,
    html_path: Path | None,
    progress: bool,
    out: TextIO,
    embedder: Embedder | None = None,
) -> int:
    """`calibrate VAL.jsonl`."""
    if _TEST_FILE.search(file.name.lower()) and not allow_test:
        raise CommandRefused(
            f"{file.name} looks like a test file; never tune on the test set (it would make the "
            "test figures meaningless). Calibrate on a validation file, or pass "
            "--i-know-this-is-test if this really is not the file you report on."
        )
    queries = load_labelled(file)
    with live_index(settings, embedder, out) as live:
        base = live.index.table.params
        names = [r.name for r in live.index.table.routes]
        texts = [q.text for q in queries]
        labels = canonical_labels(queries, set(names), base.default_route)
        grid = DEFAULT_GRID
        k_max = max(grid.k_max, base.k)
        print(
            f"calibrating on {len(queries)} queries from {file} (index {live.index.version}); "
            f"{grid.size} global settings",
            file=out,
        )
        neighbours = neighbours_for(
            live.embedder,
            live.index,
            texts,
            k_max,
            settings.embedding.batch_size,
            progress=progress,
        )
        result = calibrate(
            neighbours,
            labels,
            base,
            oos_weight=oos_weight,
            oos_share=oos_share,
            grid=grid,
            routes=names,
        )
        print_calibration(result, out)
        meta = {**live.meta, "file": str(file)}
        if json_path:
            _write_json(json_path, {"meta": meta, "result": result.to_dict()}, out)
        if html_path:
            curve = threshold_curve(neighbours, labels, result.params, CURVE_THRESHOLDS, names)
            _write_text(html_path, report_html.calibration_page(result, curve, meta), out)
    if write:
        written = write_decision_params(settings.routes_dir, result.params, settings.route_files.policy())
        if written.changed:
            print(
                f"\nwrote the chosen parameters into {len(written.changed)} file(s) of {settings.routes_dir}",
                file=out,
            )
            if written.rewritten:
                print(f"  rewritten whole (comments lost): {', '.join(written.rewritten)}", file=out)
            print(
                f"next: re-index so the service uses them: python -m indexer --routes {settings.routes_dir}"
                f" --data-dir {settings.index.data_dir}",
                file=out,
            )
        else:
            print(f"\n{settings.routes_dir} already holds these parameters.", file=out)
    else:
        print("\n(dry run: pass --write to store these parameters in the routes files)", file=out)
    return 0


def print_calibration(result: CalibrationResult, out: TextIO) -> None:
    """The calibration summary as text tables."""
    s = result.oos_share
    print(
        f"objective: weighted accuracy, fallback as a class; out-of-scope queries weigh "
        f"{result.oos_weight:.2f} each ({result.out_of_scope} of {result.queries} in the file), i.e. "
        f"{1 - s:.2f} x in-scope accuracy + {s:.2f} x fallback recall",
        file=out,
    )
    rows = []
    for v in result.variants:
        p = v.params
        setting = p.describe()
        rows.append(
            (
                v.name,
                "yes" if v.adopted else "",
                f"{v.gain * 100:+.2f}±{v.standard_error * 100:.2f}",
                setting,
                pct(v.scores.objective),
                pct(v.scores.in_scope_accuracy),
                pct(v.scores.fallback_recall),
                pct(v.scores.fallback_precision),
            )
        )
    print(
        "\ndecision-rule variants (best of each on this file; adopted when its gain over the "
        f"adopted one is >= {DEFAULT_GRID.min_variant_gain * 100:.1f} points and >= "
        f"{DEFAULT_GRID.significance:g} standard errors):",
        file=out,
    )
    print(
        text_table(
            [
                "variant",
                "adopted",
                "gain (points)",
                "setting",
                "objective",
                "in-scope acc",
                "fallback recall",
                "fallback prec",
            ],
            rows,
            max_width=70,
        ),
        file=out,
    )
    kept = [r for r in result.route_thresholds if r.offset]
    verdict = "kept" if result.route_thresholds_kept else "not kept"
    print(
        f"\nper-route thresholds: held-out gain {result.heldout_gain * 100:+.2f} "
        f"± {result.heldout_standard_error * 100:.2f} points (two-fold); "
        f"{verdict}; {len(kept)} route(s) moved from the global threshold",
        file=out,
    )
    if kept:
        print(
            text_table(
                ["route", "labelled", "threshold offset", "gain"],
                [(r.route, r.support, f"{r.offset:+.2f}", r.gain) for r in kept[:15]],
            ),
            file=out,
        )
    p = result.params
    print(
        f"\nchosen: {p.describe()}\n"
        f"  objective {pct(result.baseline.objective)} -> {pct(result.objective)}, "
        f"in-scope accuracy {pct(result.baseline.in_scope_accuracy)} -> {pct(result.scores.in_scope_accuracy)}, "
        f"fallback recall {pct(result.baseline.fallback_recall)} -> {pct(result.scores.fallback_recall)}",
        file=out,
    )
    if result.engine_mismatches:
        print(
            f"warning: the fast engine disagreed with decide() on {result.engine_mismatches} "
            "queries; figures above are decide()'s",
            file=out,
        )


# -- hygiene ----------------------------------------------------------------------------------
def run_hygiene(
    settings: RouterSettings,
    *,
    duplicate_similarity: float,
    min_examples: int,
    json_path: Path | None,
    html_path: Path | None,
    out: TextIO,
    limit: int = 15,
) -> int:
    """`hygiene`: works on the live version's stored vectors, so no model is loaded."""
    store = open_store(settings.index)
    try:
        live = store.live_version()
        if live is None:
            raise IndexMissing(f"no live index for {settings.routes_dir}: run `python -m indexer` first")
        manifest = store.manifest(live)
        stored = store.stored_points(live)
    finally:
        store.close()
    table = load_routes(settings.routes_dir, settings.route_files.policy())
    if fingerprint(manifest.model_id, manifest.dimension, table) != manifest.fingerprint:
        print(
            f"warning: live index {live} was not built from the current {settings.routes_dir}; "
            "run `python -m indexer` first for current figures.",
            file=out,
        )
    report = check_hygiene(
        stored.points,
        stored.vectors,
        duplicate_similarity=duplicate_similarity,
        min_examples=min_examples,
    )
    print(
        f"{report.routes} routes, {report.examples} examples (index {live}, model {manifest.model_id})",
        file=out,
    )
    print(f"\nexamples nearer to another route: {len(report.misplaced)}", file=out)
    if report.misplaced:
        print(
            text_table(
                ["route", "example", "by", "nearer route", "nearest example", "sim"],
                [
                    (
                        m.route,
                        m.text,
                        m.by,
                        m.other_centroid if m.by == "centroid" else m.nearest_route,
                        m.nearest_text,
                        m.nearest_similarity,
                    )
                    for m in report.misplaced[:limit]
                ],
                max_width=45,
            ),
            file=out,
        )
        worst = list(report.misplaced_by_route().items())[:10]
        print("  routes with the most: " + ", ".join(f"{r} ({n})" for r, n in worst), file=out)
    print(
        f"\nnear-duplicates across routes (cosine >= {duplicate_similarity}): {len(report.near_duplicates)}",
        file=out,
    )
    if report.near_duplicates:
        print(
            text_table(
                ["sim", "route", "example", "other route", "other example"],
                [(d.similarity, d.route_a, d.text_a, d.route_b, d.text_b) for d in report.near_duplicates[:limit]],
                max_width=45,
            ),
            file=out,
        )
    print(f"\nroutes with fewer than {min_examples} examples: {len(report.small_routes)}", file=out)
    if report.small_routes:
        print(text_table(["route", "examples"], list(report.small_routes[:limit])), file=out)
    meta = {
        "index version": live,
        "model": manifest.model_id,
        "routes dir": str(settings.routes_dir),
    }
    if json_path:
        _write_json(json_path, {"meta": meta, "report": report.to_dict()}, out)
    if html_path:
        _write_text(html_path, report_html.hygiene_page(report, meta), out)
    return 0


# -- finetune ---------------------------------------------------------------------------------
def run_finetune(
    settings: RouterSettings,
    *,
    config: FinetuneConfig,
    out_dir: Path | None,
    progress: bool,
    out: TextIO,
) -> int:
    """`finetune`: train on the routes' examples and write a versioned model directory."""
    table = load_routes(settings.routes_dir, settings.route_files.policy())
    examples = sum(len(r.examples) for r in table.routes)
    print(
        f"fine-tuning {settings.embedding.model} on {examples} examples of {len(table.routes)} routes "
        "(MultipleNegativesRankingLoss, CPU)",
        file=out,
    )
    result = finetune(
        table,
        settings.embedding.model,
        out_dir,
        settings.index.data_dir / "models",
        config,
        device=settings.embedding.device,
        progress=progress,
        on_stage=lambda msg: print(f"... {msg}", file=out),
    )
    if result.created:
        print(
            f"model {result.model_id}: {result.steps} step(s) over {result.pairs} pairs in "
            f"{result.seconds:.0f} s\n  saved to {result.path}",
            file=out,
        )
    else:
        print(
            f"model {result.model_id} already exists at {result.path} (same base, examples and "
            "settings); nothing trained",
            file=out,
        )
    print(
        "next: index with it (the index records its id; the service must load the same model):\n"
        f"  ROUTER_EMBEDDING__MODEL={result.path} python -m indexer --routes {settings.routes_dir} "
        f"--data-dir {settings.index.data_dir}",
        file=out,
    )
    return 0


# -- import -----------------------------------------------------------------------------------
def run_import(file: Path, out_dir: Path, *, exclude: Sequence[str], threshold: float | None, out: TextIO) -> int:
    """`import TRAIN.jsonl --out DIR`."""
    try:
        count = write_routes_from_jsonl(file, out_dir, exclude_labels=exclude, threshold=threshold)
    except (FileExistsError, ValueError) as exc:
        if isinstance(exc, LabelledDataInvalid):
            raise
        raise CommandRefused(str(exc)) from exc
    table = load_routes(out_dir)
    print(
        f"wrote {count} routes ({sum(len(r.examples) for r in table.routes)} examples) to {out_dir}\n"
        f"next: python -m indexer --routes {out_dir}",
        file=out,
    )
    return 0


def _write_json(path: Path, data: dict[str, Any], out: TextIO) -> None:
    _write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n", out)


def _write_text(path: Path, text: str, out: TextIO) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}", file=out)


def print_error(message: str) -> None:
    """An error line on stderr."""
    print(f"error: {message}", file=sys.stderr)
