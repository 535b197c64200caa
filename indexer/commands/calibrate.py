"""`python -m indexer calibrate FILE`: search the decision parameters on labelled validation
queries (or the conversation rule on labelled conversations) and write them with --write."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.command import Command
from indexer.defaults import DEFAULT_OOS_SHARE

if TYPE_CHECKING:
    from indexer.calibration import CalibrationResult
    from indexer.context import Context
    from indexer.hybrid import BandOptions, HybridCalibration
    from indexer.labelled import Labelled
    from indexer.off_topic import OffTopic
    from router_core import DecisionParams, Neighbour

_OBJECTIVE_HELP = f"""\
objective: weighted accuracy with fallback as a class. An in-scope query weighs 1 and is right
when it reaches its route; an out-of-scope query (label `oos` or the default route) weighs W
and is right when it falls back. By default W makes out-of-scope queries {DEFAULT_OOS_SHARE:.0%} of the
objective whatever the file's own mix (--oos-share), i.e. the objective is
0.8 x in-scope accuracy + 0.2 x fallback recall. Why explicit: a validation file's mix is an
accident (CLINC150 val holds 3.2% out-of-scope, its test 18.2%); tuned on the file's own mix,
a router learns that rejecting hardly matters and under-rejects on real traffic. Set
--oos-share to the off-topic share of your traffic, or --oos-weight to weigh each
out-of-scope query directly.

searched: threshold mode (neighbour or winner), k, global threshold, margin (ambiguity band),
vote weighting (count or similarity), tie-break (sum or max), then per-route thresholds,
kept only when they gain on held-out halves of the file (two-fold) and shrunk toward the
global threshold. Each rule, the first included, is adopted only when it beats the one
adopted before (the given parameters until one is) by >= 2 standard errors; when none does,
--write writes nothing. Never tune on the test file:
a file named like *test* is refused unless --i-know-this-is-test is given.

without out-of-scope queries (none labelled oos in FILE or in --off-topic FILE) nothing says
what rejecting is worth and the threshold would only fall: the routes' threshold (global,
mode, per-route) is then kept, with a warning, and the rest searched. --off-topic FILE adds
labelled off-topic queries; --no-off-topic tunes the threshold on in-scope queries anyway.

printed: the objective with the given and the calibrated parameters on the file (in-sample,
flattering), then the held-out estimate of the gain (the whole search run on each half of
the file and scored on the other half): the figure to expect on new queries.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """The validation file, the objective's weights, the hybrid band and --write."""
    parser.add_argument(
        "file",
        type=Path,
        help="labelled validation JSON Lines, or labelled conversations (the conversation rule); never the test file",
    )
    parser.add_argument(
        "--band",
        action="store_true",
        help="also choose the hybrid mode's uncertain band for --budget (a simulation: no model is called)",
    )
    parser.add_argument("--budget", type=float, default=0.10, help="with --band: most queries escalated (default 0.10)")
    parser.add_argument(
        "--p", type=float, default=0.9, help="with --band: simulated chance the model is right (default 0.9)"
    )
    off_topic = parser.add_mutually_exclusive_group()
    off_topic.add_argument(
        "--off-topic",
        type=Path,
        action="append",
        metavar="FILE",
        help="labelled JSON Lines whose out-of-scope queries (label oos) are added to the validation "
        "queries (conversations: inserted as off-topic turns); repeat it to add several files' (more "
        "off-topic queries, a steadier bar); never the test file",
    )
    off_topic.add_argument(
        "--no-off-topic",
        action="store_true",
        help="calibrate on a file without out-of-scope queries anyway, threshold included (it only "
        "ever falls: nothing tells it what rejecting is worth); without this flag the routes' "
        "threshold is kept",
    )
    parser.add_argument(
        "--min-off-topic",
        type=float,
        default=None,
        help="conversations: share of inserted off-topic turns that must fall back (default: as many as "
        "when the same queries are sent alone)",
    )
    parser.add_argument(
        "--write", action="store_true", help="write the chosen parameters into _router.yaml and the route files"
    )
    weight = parser.add_mutually_exclusive_group()
    weight.add_argument(
        "--oos-share",
        type=float,
        default=DEFAULT_OOS_SHARE,
        metavar="S",
        help=f"share of the objective given to out-of-scope queries (default {DEFAULT_OOS_SHARE})",
    )
    weight.add_argument(
        "--oos-weight", type=float, metavar="W", help="weight of each out-of-scope query (an in-scope query weighs 1)"
    )
    parser.add_argument(
        "--i-know-this-is-test",
        action="store_true",
        dest="allow_test",
        help="allow a file named like *test* (never report figures tuned on it)",
    )


def run(ctx: Context, args: argparse.Namespace) -> int:
    """The decision parameters, or the conversation rule when the file holds conversations."""
    from indexer.conversation_commands import run_calibrate_conversations
    from indexer.conversations import is_conversation_file
    from indexer.hybrid import BandOptions
    from indexer.off_topic import OffTopic

    if is_conversation_file(args.file):
        if args.no_off_topic:
            raise ValueError("--no-off-topic applies to labelled queries, not conversations")
        return run_calibrate_conversations(
            ctx,
            args.file,
            write=args.write,
            allow_test=args.allow_test,
            off_topic_files=tuple(args.off_topic or ()),
            min_off_topic=args.min_off_topic,
            json_path=args.json_path,
        )
    return run_calibrate(
        ctx,
        args.file,
        write=args.write,
        oos_weight=args.oos_weight,
        oos_share=args.oos_share,
        allow_test=args.allow_test,
        json_path=args.json_path,
        html_path=args.html_path,
        band=BandOptions(args.budget, args.p) if args.band else None,
        off_topic=OffTopic(tuple(args.off_topic or ()), args.no_off_topic),
    )


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
    off_topic: OffTopic | None = None,
) -> int:
    """`calibrate VAL.jsonl`: search decision parameters on the live index's neighbours; with
    `band`, then the hybrid mode's uncertain band for its budget (simulated). Out-of-scope
    queries come from the file and `off_topic`'s file; with none, the routes' threshold is kept
    unless `off_topic` says to go without (--no-off-topic)."""
    from indexer.calibration import DEFAULT_GRID
    from indexer.context import live_index, refuse_test_file
    from indexer.hybrid import calibrate_band, print_band
    from indexer.labelled import labelled_for, load_labelled
    from indexer.off_topic import OffTopic
    from indexer.text_report import print_calibration
    from router_core import RouteRequest, load_routes
    from router_core.pipeline import vote_only

    off_topic = off_topic or OffTopic()
    refuse_test_file(file, allow_test)
    for extra_file in off_topic.files:
        refuse_test_file(extra_file, allow_test)
    queries = load_labelled(file)
    extra = [q for extra_file in off_topic.files for q in load_labelled(extra_file)]
    if write:
        load_routes(
            ctx.settings.routes_dir, ctx.settings.route_files.policy()
        )  # --write into routes that do not load: say so now
    with live_index(ctx) as live:
        table = vote_only(live.index.table)
        base = table.params
        queries = [*queries, *off_topic.queries(extra, queries, base.default_route)]
        data = labelled_for(live.index.table, queries)
        hold = off_topic.hold_threshold(ctx, file, data, base)
        grid = DEFAULT_GRID.holding_threshold(base) if hold else DEFAULT_GRID
        print(
            f"calibrating on {len(queries)} queries from {file}"
            + "".join(f" and {extra_file}" for extra_file in off_topic.files)
            + f" (index {live.index.version}); {grid.size} global settings, then a held-out check on each "
            "half of the file",
            file=ctx.out,
        )
        steps = ctx.steps()
        try:  # every query's neighbours once, as many as the largest k tried
            requests = [RouteRequest.query(t) for t in data.texts]
            routing = live.router.routing(requests, table=table, progress=steps, k=max(grid.k_max, base.k))
        finally:
            steps.finish()
        neighbours = [routing.found.neighbours[t] for t in data.texts]
        result = search_parameters(
            ctx, neighbours, data, base, oos_weight=oos_weight, oos_share=oos_share, hold_threshold=hold
        )
        print_calibration(result, ctx.out)
        hybrid = None
        if band is not None:
            decided = routing.again(replace(table, params=result.params))
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
        reports = Reports(json_path, html_path, {**live.meta, "file": str(file)})
        reports.write(ctx, result, hybrid, neighbours, data)
    if hold:
        print(f"\n{off_topic.reminder(base)}", file=ctx.out)
    finish(ctx, result, hybrid, write=write)
    return 0


@dataclass(frozen=True)
class Reports:
    """`--json PATH` and `--html PATH`, and what they say the figures come from."""

    json_path: Path | None
    html_path: Path | None
    meta: dict[str, Any]

    def write(
        self,
        ctx: Context,
        result: CalibrationResult,
        hybrid: HybridCalibration | None,
        neighbours: Sequence[Sequence[Neighbour]],
        data: Labelled,
    ) -> None:
        """Write the reports asked for."""
        from indexer import report_html
        from indexer.context import write_json, write_text
        from router_core.evaluation import CURVE_THRESHOLDS, threshold_curve

        if self.json_path:
            band = {"band": hybrid.to_dict()} if hybrid is not None else {}
            write_json(self.json_path, {"meta": self.meta, "result": result.to_dict(), **band}, ctx.out)
        if self.html_path:
            curve = threshold_curve(neighbours, data.labels, result.params, CURVE_THRESHOLDS, data.routes)
            write_text(self.html_path, report_html.calibration_page(result, curve, self.meta), ctx.out)


def finish(ctx: Context, result: CalibrationResult, hybrid: HybridCalibration | None, *, write: bool) -> None:
    """--write: store what calibration chose (nothing when nothing beat the given parameters);
    else say what --write would do."""
    from indexer.routes_writer import write_llm_params

    if write:
        write_parameters(ctx, result)
        if hybrid is not None and hybrid.chosen is not None:
            write_llm_params(ctx.settings.routes_dir, hybrid.chosen.llm, ctx.settings.route_files.policy())
            print("wrote the band into the llm section of _router.yaml", file=ctx.out)
    elif result.changed:
        print("\n(dry run: pass --write to store these parameters in the routes files)", file=ctx.out)
    else:
        print("\n(nothing beat the given parameters: --write would write nothing)", file=ctx.out)


def search_parameters(
    ctx: Context,
    neighbours: Sequence[Sequence[Neighbour]],
    data: Labelled,
    base: DecisionParams,
    *,
    oos_weight: float | None,
    oos_share: float,
    hold_threshold: bool = False,
) -> CalibrationResult:
    """The calibration search, with progress, and its held-out estimate."""
    from indexer.calibration import DEFAULT_GRID, calibrate

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
            hold_threshold=hold_threshold,
            progress=steps,
        )
    finally:
        steps.finish()


def write_parameters(ctx: Context, result: CalibrationResult) -> None:
    """Store the chosen parameters in the routes files and say how to use them; when nothing
    beat the given parameters, write nothing and say so."""
    from indexer.hints import reindex_hint
    from indexer.routes_writer import write_decision_params

    settings = ctx.settings
    if not result.changed:
        print(
            f"\nnothing written: no variant beat the given parameters by the stated test, so "
            f"{settings.routes_dir} keeps them (no re-index needed)",
            file=ctx.out,
        )
        return
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


COMMAND = Command(
    name="calibrate",
    help="search decision parameters on a validation file",
    description="Search decision parameters on labelled validation queries and optionally "
    "write them into the routes files.",
    run=run,
    configure=configure,
    epilog=_OBJECTIVE_HELP,
    reports=True,
)
