"""The route-tooling subcommands: eval, calibrate, hygiene, finetune, import.

Each prints readable tables and returns an exit code; `--json` and `--html` write reports.
They run against the live index built from the routes directory (build it with
`python -m indexer reindex`); a live index that no longer matches the routes is reported.
Cheap checks come first (the labelled file, the index, the model it was built with); the model
loads when the first query is embedded. Each step is a small function (`labelled_for`,
`neighbours_of`, `decide_queries`, `search_parameters`, `write_parameters`) so that a command
can grow another way to decide or another input without rewriting the others.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from indexer import report_html
from indexer.calibration import DEFAULT_GRID, CalibrationResult, calibrate
from indexer.context import (
    CommandRefused,
    Context,
    Live,
    live_index,
    missing_index,
    refuse_test_file,
    write_json,
    write_text,
)
from indexer.evaluation import EvalReport, evaluate, neighbours_for, threshold_curve
from indexer.finetune import FinetuneConfig, finetune
from indexer.hints import index_args, indexer_command, own_data_dir, reindex_hint, safe_settings
from indexer.hybrid import HybridCalibration, calibrate_band
from indexer.hygiene import check_hygiene
from indexer.importer import ImportOptions, ImportReport, import_labelled
from indexer.labelled import LabelledQuery, canonical_labels, is_fallback_label, load_labelled
from indexer.llm_step import LLMOptions, llm_summary, run_llm_step, with_mode
from indexer.routes_writer import write_decision_params, write_llm_params
from indexer.tables import pct, text_table
from indexer.text_report import print_calibration, print_eval
from router_core import IndexMissing, load_routes, open_store
from router_core.decision import Decision, decide_many
from router_core.evaluation import CURVE_THRESHOLDS
from router_core.manifest import fingerprint
from router_core.neighbours import Neighbour
from router_core.params import DecisionParams
from router_core.pipeline import RouteRequest, vote_only


@dataclass(frozen=True)
class Labelled:
    """Labelled queries against one index: texts, gold labels as route names, and the routes."""

    texts: list[str]
    labels: list[str]
    routes: list[str]


def labelled_for(live: Live, queries: Sequence[LabelledQuery]) -> Labelled:
    """The queries' gold labels as the index's route names (or a fallback label)."""
    table = live.index.table
    names = [r.name for r in table.routes]
    labels = canonical_labels(queries, set(names), table.params.default_route)
    return Labelled([q.text for q in queries], labels, names)


def neighbours_of(ctx: Context, live: Live, texts: Sequence[str], k: int) -> list[list[Neighbour]]:
    """Embed the queries and fetch their k nearest examples, with progress."""
    steps = ctx.steps()
    try:
        return neighbours_for(live.embedder, live.index, texts, k, ctx.settings.embedding.batch_size, progress=steps)
    finally:
        steps.finish()


# -- eval -------------------------------------------------------------------------------------
def run_eval(
    ctx: Context, file: Path, *, json_path: Path | None, html_path: Path | None, llm: LLMOptions | None = None
) -> int:
    """`eval FILE.jsonl`: route every query as the service does (router_core.pipeline) on the
    live index and score the decisions; with `llm`, the route set's LLM step runs for real."""
    queries = load_labelled(file)
    with live_index(ctx) as live:
        data = labelled_for(live, queries)
        table = live.index.table if llm is None else with_mode(live.index.table, llm)
        params = table.params
        print(f"evaluating {len(queries)} queries from {file} on index {live.index.version}", file=ctx.out)
        requests = [RouteRequest.query(t) for t in data.texts]
        steps = ctx.steps()
        try:
            # The vote (mode embedding: what decides before any decision model), then its LLM step.
            routing = live.router.routing(requests, table=vote_only(table), progress=steps)
        finally:
            steps.finish()
        decisions = routing.decisions
        neighbours = [routing.found.neighbours[t] for t in data.texts]
        llm_json: dict[str, Any] | None = None
        if llm is not None:
            vote = evaluate(decisions, data.labels, params.default_route, texts=data.texts, routes=data.routes)
            print(
                f"the vote alone: in-scope accuracy {pct(vote.in_scope_accuracy)}, fallback recall "
                f"{pct(vote.fallback_recall)}; now the {table.mode} mode's LLM step:",
                file=ctx.out,
            )
            decisions, run = run_llm_step(table, decisions, requests, llm, progress=ctx.progress)
            llm_json = llm_summary(run, len(decisions), ctx.out)
        report = evaluate(decisions, data.labels, params.default_route, texts=data.texts, routes=data.routes)
        print_eval(report, ctx.out)
        meta = {**live.meta, "file": str(file), "params": params.to_dict(), "mode": table.mode}
        if json_path:
            decided = [_decision_dict(d) for d in decisions]
            write_json(
                json_path, {"meta": meta, "report": report.to_dict(), "llm": llm_json, "decisions": decided}, ctx.out
            )
        if html_path:
            _eval_html(html_path, live, data, neighbours, decisions, report, meta, ctx.out)
    return 0


def _decision_dict(d: Decision) -> dict[str, Any]:
    return {"route": d.route, "fallback": d.fallback, "reason": d.reason, "decided_by": d.decided_by, "score": d.score}


def _eval_html(
    path: Path,
    live: Live,
    data: Labelled,
    neighbours: Sequence[Sequence[Neighbour]],
    decisions: Sequence[Decision],
    report: EvalReport,
    meta: dict[str, Any],
    out: TextIO,
) -> None:
    params = live.index.table.params
    curve = threshold_curve(neighbours, data.labels, params, CURVE_THRESHOLDS, data.routes)
    fallback = params.default_route
    gold = [fallback if is_fallback_label(g, fallback) else g for g in data.labels]
    predicted = [d.route for d in decisions]
    write_text(path, report_html.eval_page(report, curve, gold, predicted, meta), out)


# -- calibrate --------------------------------------------------------------------------------
def run_calibrate(
    ctx: Context,
    file: Path,
    *,
    write: bool,
    oos_weight: float | None,
    oos_share: float,
    allow_test: bool,
    json_path: Path | None,
    html_path: Path | None,
    band: BandOptions | None = None,
) -> int:
    """`calibrate VAL.jsonl`: search decision parameters on the live index's neighbours; with
    `band`, then the hybrid mode's uncertain band for its budget (simulated)."""
    refuse_test_file(file, allow_test)
    queries = load_labelled(file)
    if write:
        load_routes(
            ctx.settings.routes_dir, ctx.settings.route_files.policy()
        )  # --write into routes that do not load: say so now
    with live_index(ctx) as live:
        data = labelled_for(live, queries)
        base = live.index.table.params
        grid = DEFAULT_GRID
        print(
            f"calibrating on {len(queries)} queries from {file} (index {live.index.version}); "
            f"{grid.size} global settings, then a held-out check on each half of the file",
            file=ctx.out,
        )
        neighbours = neighbours_of(ctx, live, data.texts, max(grid.k_max, base.k))
        result = search_parameters(ctx, neighbours, data, base, oos_weight=oos_weight, oos_share=oos_share)
        print_calibration(result, ctx.out)
        hybrid = None
        if band is not None:
            decided = decide_many(neighbours, result.params)
            hybrid = calibrate_band(
                decided,
                data.labels,
                result.params,
                live.index.table.llm,
                budget=band.budget,
                p=band.p,
                oos_share=oos_share,
            )
            print_band(hybrid, ctx.out)
        meta = {**live.meta, "file": str(file)}
        if json_path:
            extra = {"band": hybrid.to_dict()} if hybrid is not None else {}
            write_json(json_path, {"meta": meta, "result": result.to_dict(), **extra}, ctx.out)
        if html_path:
            curve = threshold_curve(neighbours, data.labels, result.params, CURVE_THRESHOLDS, data.routes)
            write_text(html_path, report_html.calibration_page(result, curve, meta), ctx.out)
    if write:
        write_parameters(ctx, result)
        if hybrid is not None and hybrid.chosen is not None:
            write_llm_params(ctx.settings.routes_dir, hybrid.chosen.llm, ctx.settings.route_files.policy())
            print("wrote the band into the llm section of _router.yaml", file=ctx.out)
    else:
        print("\n(dry run: pass --write to store these parameters in the routes files)", file=ctx.out)
    return 0


@dataclass(frozen=True)
class BandOptions:
    """`calibrate --band`: the escalation budget and the simulated chance the model is right."""

    budget: float
    p: float

    def __post_init__(self) -> None:
        if not 0.0 < self.budget <= 1.0 or not 0.0 <= self.p <= 1.0:
            raise ValueError("--budget must be in (0, 1] and --p in [0, 1]")


def print_band(result: HybridCalibration, out: TextIO) -> None:
    """The band chosen for the budget, SIMULATED figures beside the vote alone."""
    print(
        f"\nhybrid band for at most {pct(result.budget)} of queries escalated (counted at {pct(result.oos_share)} "
        f"out-of-scope traffic). SIMULATED: no model was called; 'upper' assumes it is right whenever the gold "
        f"route is offered (or the query is out of scope), 'p={result.p}' that it is then right with that chance.",
        file=out,
    )
    rows: list[tuple[object, ...]] = [
        ("vote alone", "-", "-", pct(result.vote.in_scope_p), pct(result.vote.recall_p), "-", "-")
    ]
    for trial in ([result.chosen] if result.chosen else []) + list(result.top[1:6]):
        s, b = trial.scores, trial.llm
        setting = f"below {b.band_below} above {b.band_above} lead {b.min_lead} top {b.candidates}"
        rows.append(
            (
                setting,
                pct(s.escalated),
                f"{pct(s.vote_on_escalated)} / {pct(s.vote_on_rest)}",
                pct(s.in_scope_p),
                pct(s.recall_p),
                pct(s.in_scope_upper),
                pct(s.recall_upper),
            )
        )
    headers = [
        "band",
        "escalated",
        "vote right: esc. / rest",
        "in-scope (p)",
        "recall (p)",
        "in-scope (upper)",
        "recall (upper)",
    ]
    print(text_table(headers, rows), file=out)
    if result.chosen is None:
        print("no band keeps within the budget", file=out)
    else:
        print("chosen: the first row after the vote (in-sample; see bench.hybrid for test-file figures)", file=out)


def search_parameters(
    ctx: Context,
    neighbours: Sequence[Sequence[Neighbour]],
    data: Labelled,
    base: DecisionParams,
    *,
    oos_weight: float | None,
    oos_share: float,
) -> CalibrationResult:
    """The calibration search, with progress, and its held-out estimate."""
    steps = ctx.steps()
    try:
        return calibrate(
            neighbours,
            data.labels,
            base,
            oos_weight=oos_weight,
            oos_share=oos_share,
            grid=DEFAULT_GRID,
            routes=data.routes,
            estimate_heldout=True,
            progress=steps,
        )
    finally:
        steps.finish()


def write_parameters(ctx: Context, result: CalibrationResult) -> None:
    """Store the chosen parameters in the routes files and say how to use them."""
    settings = ctx.settings
    written = write_decision_params(settings.routes_dir, result.params, settings.route_files.policy())
    if not written.changed:
        print(f"\n{settings.routes_dir} already holds these parameters.", file=ctx.out)
        return
    print(
        f"\nwrote the chosen parameters into {len(written.changed)} file(s) of {settings.routes_dir}",
        file=ctx.out,
    )
    if written.rewritten:
        print(f"  rewritten whole (comments lost): {', '.join(written.rewritten)}", file=ctx.out)
    print(f"next: re-index so that they are used: {reindex_hint(settings, ctx.configured)}", file=ctx.out)


# -- hygiene ----------------------------------------------------------------------------------
def run_hygiene(
    ctx: Context,
    *,
    duplicate_similarity: float,
    min_examples: int,
    json_path: Path | None,
    html_path: Path | None,
    limit: int = 15,
) -> int:
    """`hygiene`: works on the live version's stored vectors, so no model is loaded."""
    settings, out = ctx.settings, ctx.out
    store = open_store(settings.index)
    try:
        live = store.live_version()
        if live is None:
            raise IndexMissing(missing_index(ctx))
        manifest = store.manifest(live)
        stored = store.stored_points(live)
    finally:
        store.close()
    table = load_routes(settings.routes_dir, settings.route_files.policy())
    if fingerprint(manifest.model_id, manifest.dimension, table) != manifest.fingerprint:
        print(
            f"warning: live index {live} was not built from the current {settings.routes_dir}; "
            f"refresh it with `{reindex_hint(settings, ctx.configured)}` for current figures.",
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
        write_json(json_path, {"meta": meta, "report": report.to_dict()}, out)
    if html_path:
        write_text(html_path, report_html.hygiene_page(report, meta), out)
    return 0


# -- finetune ---------------------------------------------------------------------------------
def run_finetune(ctx: Context, *, config: FinetuneConfig, out_dir: Path | None) -> int:
    """`finetune`: train on the routes' examples and write a versioned model directory."""
    settings, out, progress = ctx.settings, ctx.out, ctx.progress
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
        "next: index with it (the index records its id; the service must load the same model, "
        f"ROUTER_EMBEDDING__MODEL={shlex.quote(str(result.path))}):\n"
        f"  {reindex_hint(settings, ctx.configured, '--model', result.path)}",
        file=out,
    )
    return 0


# -- import -----------------------------------------------------------------------------------
def run_import(ctx: Context, file: Path, out_dir: Path, options: ImportOptions, *, data_dir: Path | None) -> int:
    """`import TRAIN.jsonl --out DIR`: write the routes (and the held-out file), then print the
    commands that evaluate them in an index of their own."""
    try:
        report = import_labelled(file, out_dir, options)
    except FileExistsError as exc:
        raise CommandRefused(str(exc)) from exc
    load_routes(out_dir)  # what was written loads
    print_import(report, out_dir, ctx.out)
    target = ctx.settings.model_copy(update={"routes_dir": out_dir})
    target = target.model_copy(
        update={"index": target.index.model_copy(update={"data_dir": data_dir or own_data_dir(out_dir)})}
    )
    target = safe_settings(target, ctx.configured)
    where = index_args(target)
    steps = [indexer_command("reindex", *where)]
    if report.val_path is not None:
        steps.append(indexer_command("calibrate", report.val_path, *where, "--write"))
        steps.append(indexer_command("reindex", *where))
    print("next, in an index of their own (not the service's):", file=ctx.out)
    for step in steps:
        print(f"  {step}", file=ctx.out)
    print(f"then score a labelled test file: {indexer_command('eval', 'TEST.jsonl', *where)}", file=ctx.out)
    return 0


def print_import(report: ImportReport, out_dir: Path, out: TextIO) -> None:
    """What an import wrote."""
    sampled = " (sampled with --per-route)" if report.sampled else ""
    print(f"wrote {report.routes} routes ({report.examples} examples{sampled}) to {out_dir}", file=out)
    if report.short_routes:
        shown = ", ".join(report.short_routes[:5]) + (" ..." if len(report.short_routes) > 5 else "")
        print(f"  {len(report.short_routes)} route(s) had fewer examples than asked: {shown}", file=out)
    if report.val_path is not None:
        print(
            f"held out {report.held_out} queries ({report.held_out_fallback} out of scope) to {report.val_path}",
            file=out,
        )
    if report.replaced:
        print(f"replaced files edited since the last import (--force): {', '.join(report.replaced)}", file=out)
