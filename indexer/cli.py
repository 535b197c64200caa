"""`python -m indexer [reindex] [--dry-run]`: validate routes, embed, publish, switch.

Route tooling on the live index: `eval`, `calibrate`, `hygiene`, `finetune`, and `import`
(labelled JSON Lines to a routes directory); see `python -m indexer COMMAND --help`.

Exit codes: 0 done, 2 invalid routes, input or arguments, 1 any other failure (a re-index
then leaves the live index exactly as it was).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from indexer import commands
from indexer.calibration import DEFAULT_OOS_SHARE
from indexer.finetune import FinetuneConfig
from indexer.hygiene import DEFAULT_DUPLICATE_SIMILARITY, DEFAULT_MIN_EXAMPLES
from indexer.labelled import LabelledDataInvalid
from router_core import (
    Embedder,
    IndexBusy,
    RouterError,
    RouterSettings,
    RoutesInvalid,
    load_embedder,
    load_routes,
    open_store,
    plan_reindex,
    run_reindex,
)
from router_core.reindex import ReindexPlan
from router_core.settings import settings_problems

COMMANDS = ("reindex", "eval", "calibrate", "hygiene", "finetune", "import")

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
global threshold. Never tune on the test file:
a file named like *test* is refused unless --i-know-this-is-test is given.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m indexer",
        description="Validate routes/, embed their examples and publish a new index version.",
    )
    sub = parser.add_subparsers(dest="command")
    reindex = sub.add_parser("reindex", help="(default) build and switch to a new index version")
    for p in (parser, reindex):
        _index_options(p)
        p.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    _tool_parsers(sub)
    return parser


def _tool_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ev = sub.add_parser(
        "eval",
        help="score the live index on labelled JSON Lines",
        description="Accuracy, in-scope accuracy, fallback precision/recall, per-route P/R/F1 and "
        'the most confused route pairs for labelled queries ({"text", "label"} per line; '
        "label `oos` or the default route's name means the query should fall back).",
    )
    ev.add_argument("file", type=Path, help="labelled JSON Lines")
    cal = sub.add_parser(
        "calibrate",
        help="search decision parameters on a validation file",
        description="Search decision parameters on labelled validation queries and optionally "
        "write them into the routes files.",
        epilog=_OBJECTIVE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cal.add_argument("file", type=Path, help="labelled validation JSON Lines (never the test file)")
    cal.add_argument(
        "--write", action="store_true", help="write the chosen parameters into _router.yaml and the route files"
    )
    weight = cal.add_mutually_exclusive_group()
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
    cal.add_argument(
        "--i-know-this-is-test",
        action="store_true",
        dest="allow_test",
        help="allow a file named like *test* (never report figures tuned on it)",
    )
    hy = sub.add_parser(
        "hygiene",
        help="find misplaced examples, cross-route duplicates and thin routes",
        description="Report examples nearer to another route than to their own (nearest example "
        "or leave-one-out centroid), near-duplicates across routes and routes with few examples.",
    )
    hy.add_argument(
        "--duplicate-similarity",
        type=float,
        default=DEFAULT_DUPLICATE_SIMILARITY,
        help=f"cosine at or above which two examples are near-duplicates (default {DEFAULT_DUPLICATE_SIMILARITY})",
    )
    hy.add_argument(
        "--min-examples",
        type=int,
        default=DEFAULT_MIN_EXAMPLES,
        help=f"flag routes with fewer examples (default {DEFAULT_MIN_EXAMPLES})",
    )
    hy.add_argument("--limit", type=int, default=15, help="rows printed per table (default 15)")
    ft = sub.add_parser(
        "finetune",
        help="fine-tune the embedding model on the route examples (explicit step)",
        description="Fine-tune the embedding model on the route examples with "
        "MultipleNegativesRankingLoss (pairs of examples of one route; the other routes in the "
        "batch are negatives), on CPU, and write a versioned model directory identified by "
        "router-model.json. Index with it afterwards (ROUTER_EMBEDDING__MODEL=<dir>).",
    )
    defaults = FinetuneConfig()
    ft.add_argument("--epochs", type=int, default=defaults.epochs)
    ft.add_argument("--batch-size", type=int, default=defaults.batch_size)
    ft.add_argument("--lr", type=float, default=defaults.learning_rate, help="learning rate")
    ft.add_argument("--max-steps", type=int, help="stop after this many steps")
    ft.add_argument("--seed", type=int, default=defaults.seed)
    ft.add_argument("--out", type=Path, help="model directory (default: <data dir>/models/<model id>)")
    im = sub.add_parser(
        "import",
        help="turn labelled JSON Lines into a routes directory",
        description="One route per label (canned agent replying [label]) plus _router.yaml, "
        "e.g. from CLINC150's train split.",
    )
    im.add_argument("file", type=Path, help="labelled JSON Lines")
    im.add_argument("--out", type=Path, required=True, help="routes directory to write")
    im.add_argument("--exclude", action="append", help="label to leave out (default: oos)")
    im.add_argument("--threshold", type=float, help="global threshold for _router.yaml")
    for p in (ev, cal, hy, ft):
        # hygiene reads the stored vectors and loads no model: no --model to ignore.
        _index_options(p, default=argparse.SUPPRESS, model=p is not hy)
    for p in (ev, cal, hy):
        p.add_argument("--json", type=Path, dest="json_path", metavar="PATH", help="write JSON here")
        p.add_argument("--html", type=Path, dest="html_path", metavar="PATH", help="write an HTML report here")


def _index_options(p: argparse.ArgumentParser, default: object = None, *, model: bool = True) -> None:
    kw: dict[str, Any] = {} if default is None else {"default": default}
    p.add_argument("--routes", type=Path, help="routes directory (ROUTER_ROUTES_DIR)", **kw)
    p.add_argument("--data-dir", type=Path, help="embedded index directory (ROUTER_INDEX__DATA_DIR)", **kw)
    if model:
        p.add_argument("--model", help="embedding model name or path (ROUTER_EMBEDDING__MODEL)", **kw)
    p.add_argument("--quiet", action="store_true", help="no progress bar", **kw)


def settings_from(args: argparse.Namespace, base: RouterSettings | None = None) -> RouterSettings:
    """Settings from the environment, overridden by command-line options."""
    settings = base or RouterSettings()
    update: dict[str, object] = {}
    if getattr(args, "routes", None):
        update["routes_dir"] = args.routes
    if getattr(args, "data_dir", None):
        update["index"] = settings.index.model_copy(update={"data_dir": args.data_dir})
    if getattr(args, "model", None):
        update["embedding"] = settings.embedding.model_copy(update={"model": args.model})
    return settings.model_copy(update=update)


def main(argv: Sequence[str] | None = None, *, out: TextIO = sys.stdout, embedder: Embedder | None = None) -> int:
    """Run one command; `embedder` lets a caller reuse a loaded model for eval and calibrate."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as exc:  # invalid settings: named, never echoed (they may hold keys)
        lines = "\n".join(f"  - {line}" for line in settings_problems(exc))
        print(f"error: invalid settings:\n{lines}", file=sys.stderr)
        return 2
    if args.command not in (None, "reindex"):
        return _run_tool(args, settings, out, embedder)
    try:
        return reindex(settings, dry_run=args.dry_run, progress=not args.quiet, out=out)
    except RoutesInvalid as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("nothing was indexed; the live index is unchanged.", file=sys.stderr)
        return 2
    except IndexBusy as exc:  # the other re-index may well change the live index: say only what this one did
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RouterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("the live index is unchanged.", file=sys.stderr)
        return 1


def _run_tool(args: argparse.Namespace, settings: RouterSettings, out: TextIO, embedder: Embedder | None) -> int:
    progress = not getattr(args, "quiet", False)
    try:
        if args.command == "eval":
            return commands.run_eval(
                settings,
                args.file,
                json_path=args.json_path,
                html_path=args.html_path,
                progress=progress,
                out=out,
                embedder=embedder,
            )
        if args.command == "calibrate":
            return commands.run_calibrate(
                settings,
                args.file,
                write=args.write,
                oos_weight=args.oos_weight,
                oos_share=args.oos_share,
                allow_test=args.allow_test,
                json_path=args.json_path,
                html_path=args.html_path,
                progress=progress,
                out=out,
                embedder=embedder,
            )
        if args.command == "hygiene":
            return commands.run_hygiene(
                settings,
                duplicate_similarity=args.duplicate_similarity,
                min_examples=args.min_examples,
                json_path=args.json_path,
                html_path=args.html_path,
                out=out,
                limit=args.limit,
            )
        if args.command == "finetune":
            config = FinetuneConfig(
                epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate=args.lr,
                max_steps=args.max_steps,
                seed=args.seed,
            )
            return commands.run_finetune(settings, config=config, out_dir=args.out, progress=progress, out=out)
        return commands.run_import(
            args.file, args.out, exclude=args.exclude or ["oos"], threshold=args.threshold, out=out
        )
    except (RoutesInvalid, LabelledDataInvalid, commands.CommandRefused, ValueError) as exc:
        commands.print_error(str(exc))
        return 2
    except FileExistsError as exc:  # an --out that holds something else
        commands.print_error(str(exc))
        return 2
    except (RouterError, OSError) as exc:  # OSError: an output path that cannot be written
        commands.print_error(str(exc))
        return 1


def reindex(settings: RouterSettings, *, dry_run: bool, progress: bool, out: TextIO) -> int:
    """Run (or preview) one re-index and print its summary."""
    started = time.perf_counter()
    table = load_routes(settings.routes_dir, settings.route_files.policy())
    print(
        f"routes: {len(table.routes)} valid in {settings.routes_dir} "
        f"({sum(len(r.examples) for r in table.routes)} examples)",
        file=out,
    )
    embedder = load_embedder(
        settings.embedding.model, backend=settings.embedding.backend, device=settings.embedding.device
    )
    loaded = time.perf_counter()
    print(f"model: {embedder.model_id} (dim {embedder.dimension}), loaded in {loaded - started:.1f} s", file=out)
    store = open_store(settings.index)
    try:
        if dry_run:
            print_plan(plan_reindex(table, store, embedder), out)
            return 0
        report = run_reindex(
            table,
            store,
            embedder,
            batch_size=settings.embedding.batch_size,
            progress=progress,
            keep_versions=settings.index.keep_versions,
            on_stage=lambda msg: print(f"... {msg}", file=out),
        )
    finally:
        store.close()
    if report.superseded:  # another re-index switched the live pointer after this one
        state = f"published, but not live: another re-index has since made {report.live_after} live"
    else:
        state = "published and live" if report.changed else "already up to date"
    print(
        f"version {report.version}: {state}\n"
        f"  routes {report.routes}, examples {report.examples}: "
        f"embedded {report.embedded}, reused {report.reused}\n"
        f"  index time {report.seconds:.2f} s, total {time.perf_counter() - started:.1f} s"
        + (f"\n  dropped old versions: {', '.join(report.dropped_versions)}" if report.dropped_versions else ""),
        file=out,
    )
    return 0


def print_plan(plan: ReindexPlan, out: TextIO) -> None:
    """Describe what a re-index would change."""
    live = plan.live_version or "none"
    if plan.up_to_date:
        print(f"dry run: live version {live} is up to date; nothing would change.", file=out)
        return
    print(f"dry run: live version {live}; a re-index would:", file=out)
    if plan.model_changed:
        print("  re-embed everything: the embedding model or dimension changed", file=out)
    for c in plan.changes:
        detail = []
        if c.examples_added:
            detail.append(f"+{len(c.examples_added)} example(s)")
        if c.examples_removed:
            detail.append(f"-{len(c.examples_removed)} example(s)")
        if c.settings_changed:
            detail.append("settings: " + ", ".join(c.settings_changed))
        print(f"  {c.change:8} {c.route}: {'; '.join(detail) or 'no examples'}", file=out)
        for text in c.examples_added[:5]:
            print(f"      + {text}", file=out)
        for text in c.examples_removed[:5]:
            print(f"      - {text}", file=out)
    print(
        f"  embed {len(plan.to_embed)}, reuse {len(plan.points) - len(plan.to_embed)} of "
        f"{len(plan.points)} example(s); nothing was written.",
        file=out,
    )
