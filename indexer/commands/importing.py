"""`python -m indexer import FILE --out DIR`: labelled JSON Lines to a routes directory (and a
held-out validation file)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from indexer.command import Command

if TYPE_CHECKING:
    from indexer.context import Context
    from indexer.importer import ImportOptions, ImportReport


def configure(parser: argparse.ArgumentParser) -> None:
    """The labelled file, the routes directory to write, the split and the sample."""
    parser.add_argument("file", type=Path, help="labelled JSON Lines")
    parser.add_argument("--out", type=Path, required=True, help="routes directory to write")
    parser.add_argument("--exclude", action="append", help="label that becomes no route (default: oos)")
    parser.add_argument("--threshold", type=float, help="global threshold for _router.yaml (default 0.45)")
    parser.add_argument("--k", type=int, help="neighbours that vote, k in _router.yaml (default 5)")
    parser.add_argument("--per-route", type=int, metavar="N", help="keep N examples per route, sampled with --seed")
    parser.add_argument(
        "--val-share",
        type=float,
        default=0.0,
        metavar="F",
        help="hold out this share of each label's queries as a validation file (--val-out)",
    )
    parser.add_argument("--val-out", type=Path, metavar="PATH", help="where the held-out queries go (JSON Lines)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out split and the sample (default 0)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace files a previous import wrote even when they were edited since (calibrated "
        "parameters, say), and an existing --val-out file",
    )


def run(ctx: Context, args: argparse.Namespace) -> int:
    """Import with the options."""
    from indexer.importer import ImportOptions

    options = ImportOptions(
        exclude=tuple(args.exclude or ["oos"]),
        threshold=args.threshold,
        k=args.k,
        per_route=args.per_route,
        val_share=args.val_share,
        val_path=args.val_out,
        seed=args.seed,
        force=args.force,
    )
    return run_import(ctx, args.file, args.out, options, data_dir=getattr(args, "data_dir", None))


def run_import(ctx: Context, file: Path, out_dir: Path, options: ImportOptions, *, data_dir: Path | None) -> int:
    """`import TRAIN.jsonl --out DIR`: write the routes (and the held-out file), then print the
    commands that evaluate them in an index of their own."""
    from indexer.context import CommandRefused
    from indexer.hints import index_args, indexer_command, own_data_dir, safe_settings
    from indexer.importer import import_labelled
    from router_core import load_routes

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
    where = index_args(target, ctx.configured)
    steps = [indexer_command("reindex", *where)]
    if report.val_path is not None:
        steps.append(indexer_command("calibrate", report.val_path, *where, "--write"))
        steps.append(indexer_command("reindex", *where))
    print("next, in an index of their own (not the service's):", file=ctx.out)
    for step in steps:
        print(f"  {step}", file=ctx.out)
    if report.val_path is not None and report.held_out_fallback == 0:
        print(
            f"note: {file} has no out-of-scope label ({', '.join(options.exclude)}), so {report.val_path} holds no "
            "off-topic query: calibrate will say so and keep the routes' threshold, tuning the rest. To calibrate "
            "the threshold too, add labelled off-topic queries (label oos) with calibrate's --off-topic FILE.",
            file=ctx.out,
        )
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


COMMAND = Command(
    name="import",
    help="turn labelled JSON Lines into a routes directory (and a held-out validation file)",
    description="One route per label (canned agent replying [label]) plus _router.yaml, "
    "e.g. from CLINC150's train split. --val-share holds out a share of every label's queries "
    "(out-of-scope ones included) as a validation file to calibrate on, so a data set without a "
    "val split needs no script; --per-route keeps a few examples per route (few-shot). Both "
    "are seeded: the same file and --seed give the same split and sample, and the held-out "
    "queries do not depend on --per-route.",
    run=run,
    configure=configure,
    shared=frozenset({"data_dir", "quiet"}),  # --data-dir: the index its next steps use
    data_dir_help="the index directory the printed next steps use (default <out>-data)",
)
