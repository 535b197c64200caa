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
from indexer.conversation_commands import LLMOptions, run_calibrate_conversations, run_eval_conversations
from indexer.conversations import is_conversation_file
from indexer.finetune import FinetuneConfig
from indexer.hints import REPLACE_FLAG, publish_refusal
from indexer.hygiene import DEFAULT_DUPLICATE_SIMILARITY, DEFAULT_MIN_EXAMPLES
from indexer.importer import ImportOptions
from indexer.labelled import LabelledDataInvalid
from indexer.model_loading import LazyEmbedder
from indexer.settings import IndexerSettings
from router_core import (
    Embedder,
    IndexBusy,
    RouterError,
    RouterSettings,
    RoutesInvalid,
    load_routes,
    open_store,
    plan_reindex,
    run_reindex,
)
from router_core.reindex import ReindexPlan, live_to_replace
from router_core.settings import settings_problems
from router_llm.settings import DeciderSettings, LLMSettings

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

printed: the objective with the given and the calibrated parameters on the file (in-sample,
flattering), then the held-out estimate of the gain (the whole search run on each half of
the file and scored on the other half): the figure to expect on new queries.
"""


# Options every command shares, the commands that accept each, and the reindex-only ones. An
# option is accepted before the command too (`python -m indexer --data-dir D reindex`), with the
# same meaning; before a command that does not accept it, it is an error, never ignored.
_SHARED = ("routes", "data_dir", "model", "quiet")
_REINDEX_ONLY = ("dry_run", "replace_configured_index")
ACCEPTS: dict[str, frozenset[str]] = {
    "reindex": frozenset(_SHARED + _REINDEX_ONLY),
    "eval": frozenset(_SHARED),
    "calibrate": frozenset(_SHARED),
    "finetune": frozenset(_SHARED),
    "hygiene": frozenset({"routes", "data_dir", "quiet"}),  # reads stored vectors: no model
    "import": frozenset({"data_dir", "quiet"}),  # --data-dir: the index its next steps use
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m indexer",
        description="Validate routes/, embed their examples and publish a new index version "
        "(the default command, `reindex`), or work on route quality (eval, calibrate, hygiene, "
        "finetune, import).",
    )
    # Before the command: every option defaults to None, so that one not given is told apart.
    _index_options(parser, set(ACCEPTS["reindex"]), default=None)
    sub = parser.add_subparsers(dest="command")
    reindex = sub.add_parser("reindex", help="(default) build and switch to a new index version")
    _index_options(reindex, set(ACCEPTS["reindex"]))
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
    ev.add_argument(
        "file", type=Path, help="labelled JSON Lines, or labelled conversations (a 'messages' list per line)"
    )
    ev.add_argument(
        "--llm",
        action="store_true",
        help="run the route set's LLM step for real (modes llm and hybrid; ROUTER_DECIDER__* name the model)",
    )
    ev.add_argument(
        "--mode", choices=("llm", "hybrid"), help="with --llm: evaluate as this mode, whatever the route set's"
    )
    ev.add_argument("--concurrency", type=int, default=4, help="with --llm: questions in flight at once (default 4)")
    cal = sub.add_parser(
        "calibrate",
        help="search decision parameters on a validation file",
        description="Search decision parameters on labelled validation queries and optionally "
        "write them into the routes files.",
        epilog=_OBJECTIVE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cal.add_argument(
        "file",
        type=Path,
        help="labelled validation JSON Lines, or labelled conversations (the conversation rule); never the test file",
    )
    cal.add_argument(
        "--band",
        action="store_true",
        help="also choose the hybrid mode's uncertain band for --budget (a simulation: no model is called)",
    )
    cal.add_argument("--budget", type=float, default=0.10, help="with --band: most queries escalated (default 0.10)")
    cal.add_argument(
        "--p", type=float, default=0.9, help="with --band: simulated chance the model is right (default 0.9)"
    )
    cal.add_argument(
        "--off-topic",
        type=Path,
        metavar="FILE",
        help="conversations: labelled JSON Lines whose oos queries are inserted as off-topic turns",
    )
    cal.add_argument(
        "--min-off-topic",
        type=float,
        default=0.8,
        help="conversations: share of inserted off-topic turns that must fall back (default 0.8)",
    )
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
        help="turn labelled JSON Lines into a routes directory (and a held-out validation file)",
        description="One route per label (canned agent replying [label]) plus _router.yaml, "
        "e.g. from CLINC150's train split. --val-share holds out a share of every label's queries "
        "(out-of-scope ones included) as a validation file to calibrate on, so a data set without a "
        "val split needs no script; --per-route keeps a few examples per route (few-shot). Both "
        "are seeded: the same file and --seed give the same split and sample, and the held-out "
        "queries do not depend on --per-route.",
    )
    im.add_argument("file", type=Path, help="labelled JSON Lines")
    im.add_argument("--out", type=Path, required=True, help="routes directory to write")
    im.add_argument("--exclude", action="append", help="label that becomes no route (default: oos)")
    im.add_argument("--threshold", type=float, help="global threshold for _router.yaml (default 0.45)")
    im.add_argument("--k", type=int, help="neighbours that vote, k in _router.yaml (default 5)")
    im.add_argument("--per-route", type=int, metavar="N", help="keep N examples per route, sampled with --seed")
    im.add_argument(
        "--val-share",
        type=float,
        default=0.0,
        metavar="F",
        help="hold out this share of each label's queries as a validation file (--val-out)",
    )
    im.add_argument("--val-out", type=Path, metavar="PATH", help="where the held-out queries go (JSON Lines)")
    im.add_argument("--seed", type=int, default=0, help="seed of the held-out split and the sample (default 0)")
    im.add_argument(
        "--force",
        action="store_true",
        help="replace files a previous import wrote even when they were edited since (calibrated "
        "parameters, say), and an existing --val-out file",
    )
    for name, p in (("eval", ev), ("calibrate", cal), ("hygiene", hy), ("finetune", ft)):
        _index_options(p, set(ACCEPTS[name]))
    _index_options(
        im, set(ACCEPTS["import"]), data_dir_help="the index directory the printed next steps use (default <out>-data)"
    )
    for p in (ev, cal, hy):
        p.add_argument("--json", type=Path, dest="json_path", metavar="PATH", help="write JSON here")
        p.add_argument("--html", type=Path, dest="html_path", metavar="PATH", help="write an HTML report here")


_DATA_DIR_HELP = "embedded index directory (ROUTER_INDEX__DATA_DIR)"


def _index_options(
    p: argparse.ArgumentParser,
    names: set[str],
    default: object = argparse.SUPPRESS,
    data_dir_help: str = _DATA_DIR_HELP,
) -> None:
    """The shared options in `names`; a sub-command's default is SUPPRESS, so an option given
    before the command is not overwritten by the sub-command's default."""
    kw: dict[str, Any] = {"default": default}
    if "routes" in names:
        p.add_argument("--routes", type=Path, help="routes directory (ROUTER_ROUTES_DIR)", **kw)
    if "data_dir" in names:
        p.add_argument("--data-dir", type=Path, help=data_dir_help, **kw)
    if "model" in names:
        p.add_argument("--model", help="embedding model name or path (ROUTER_EMBEDDING__MODEL)", **kw)
    if "quiet" in names:
        p.add_argument("--quiet", action="store_true", help="no progress on stderr", **kw)
    if "dry_run" in names:
        p.add_argument("--dry-run", action="store_true", help="print what would change; write nothing", **kw)
    if "replace_configured_index" in names:
        p.add_argument(
            REPLACE_FLAG,
            action="store_true",
            help="allow publishing a routes directory other than the configured one (ROUTER_ROUTES_DIR) "
            "into the configured index, the one the service serves",
            **kw,
        )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; an option given before a command that does not take it is an
    error (exit 2), never silently dropped."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command = args.command or "reindex"
    accepted = ACCEPTS[args.command]
    for name in (*_SHARED, *_REINDEX_ONLY):
        if getattr(args, name, None) is not None and name not in accepted:
            parser.error(f"--{name.replace('_', '-')} does not apply to `{args.command}`")
    for name in ("quiet", "dry_run", "replace_configured_index"):
        setattr(args, name, bool(getattr(args, name, False)))
    return args


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
    """Run one command; `embedder` lets a caller reuse a loaded model (else it loads when needed)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse(argv)
    started = time.perf_counter()
    try:
        configured = IndexerSettings()
    except ValueError as exc:  # pydantic's ValidationError, pydantic-settings' SettingsError
        # Named, never echoed: a value set under the wrong name may be a key.
        lines = "\n".join(f"  - {line}" for line in settings_problems(exc, IndexerSettings))
        commands.print_error(f"invalid settings in the environment or .env:\n{lines}")
        return 2
    settings = settings_from(args, configured)
    if args.command != "reindex":
        code = _run_tool(args, settings, configured, out, embedder)
        if code == 0:
            print(f"done in {time.perf_counter() - started:.1f} s", file=out)
        return code
    try:
        return reindex(
            settings,
            dry_run=args.dry_run,
            progress=not args.quiet,
            out=out,
            embedder=embedder,
            configured=None if args.replace_configured_index else configured,
        )
    except commands.CommandRefused as exc:
        commands.print_error(str(exc))
        print("nothing was indexed; the live index is unchanged.", file=sys.stderr)
        return 2
    except RoutesInvalid as exc:
        commands.print_error(str(exc))
        print("nothing was indexed; the live index is unchanged.", file=sys.stderr)
        return 2
    except IndexBusy as exc:  # the other re-index may well change the live index: say only what this one did
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RouterError as exc:
        commands.print_error(str(exc))
        print("the live index is unchanged.", file=sys.stderr)
        return 1


def _llm_options(args: argparse.Namespace, settings: RouterSettings) -> LLMOptions | None:
    if not getattr(args, "llm", False):
        if getattr(args, "mode", None):
            raise ValueError("--mode applies with --llm only")
        return None
    decider = settings.decider if isinstance(settings, IndexerSettings) else DeciderSettings()
    llm = settings.llm if isinstance(settings, IndexerSettings) else LLMSettings()
    if args.concurrency < 1:
        raise ValueError("--concurrency must be at least 1")
    return LLMOptions(decider, llm, mode=args.mode, concurrency=args.concurrency)


def _run_tool(
    args: argparse.Namespace,
    settings: RouterSettings,
    configured: RouterSettings,
    out: TextIO,
    embedder: Embedder | None,
) -> int:
    progress = not args.quiet
    context = commands.Context(settings, configured, out, progress, embedder)
    try:
        if args.command == "eval":
            llm = _llm_options(args, settings)
            if is_conversation_file(args.file):
                return run_eval_conversations(
                    context, args.file, json_path=args.json_path, html_path=args.html_path, llm=llm
                )
            return commands.run_eval(context, args.file, json_path=args.json_path, html_path=args.html_path, llm=llm)
        if args.command == "calibrate" and is_conversation_file(args.file):
            return run_calibrate_conversations(
                context,
                args.file,
                write=args.write,
                allow_test=args.allow_test,
                off_topic_file=args.off_topic,
                min_off_topic=args.min_off_topic,
                json_path=args.json_path,
            )
        if args.command == "calibrate":
            return commands.run_calibrate(
                context,
                args.file,
                write=args.write,
                oos_weight=args.oos_weight,
                oos_share=args.oos_share,
                allow_test=args.allow_test,
                json_path=args.json_path,
                html_path=args.html_path,
                band=commands.BandOptions(args.budget, args.p) if args.band else None,
            )
        if args.command == "hygiene":
            return commands.run_hygiene(
                context,
                duplicate_similarity=args.duplicate_similarity,
                min_examples=args.min_examples,
                json_path=args.json_path,
                html_path=args.html_path,
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
            return commands.run_finetune(context, config=config, out_dir=args.out)
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
        return commands.run_import(context, args.file, args.out, options, data_dir=getattr(args, "data_dir", None))
    except (RoutesInvalid, LabelledDataInvalid, commands.CommandRefused, ValueError) as exc:
        commands.print_error(str(exc))
        return 2
    except FileExistsError as exc:  # an --out that holds something else
        commands.print_error(str(exc))
        return 2
    except (RouterError, OSError) as exc:  # OSError: an output path that cannot be written
        commands.print_error(str(exc))
        return 1


def reindex(
    settings: RouterSettings,
    *,
    dry_run: bool,
    progress: bool,
    out: TextIO,
    embedder: Embedder | None = None,
    configured: RouterSettings | None = None,
) -> int:
    """Run (or preview) one re-index and print its summary. The model loads only when something
    must be embedded. With `configured`, publishing another routes directory into the configured
    index is refused (see `indexer.hints`)."""
    started = time.perf_counter()
    table = load_routes(settings.routes_dir, settings.route_files.policy())
    print(
        f"routes: {len(table.routes)} valid in {settings.routes_dir} "
        f"({sum(len(r.examples) for r in table.routes)} examples)",
        file=out,
    )
    refusal = None if configured is None else publish_refusal(settings, configured)
    if refusal and not dry_run:
        raise commands.CommandRefused(refusal)
    store = open_store(settings.index)
    try:
        model = commands.model_for(settings, embedder, quiet=not progress, out=out)
        live = live_to_replace(store)  # a dangling live pointer is what a re-index repairs
        if isinstance(model, LazyEmbedder) and live is not None:
            manifest = store.manifest(live)
            model.assume_dimension_from(manifest.model_id, manifest.dimension)
        if dry_run:
            print_plan(plan_reindex(table, store, model), out)
            if refusal:
                print(f"note: a re-index would be refused: {refusal}", file=out)
            return 0
        report = run_reindex(
            table,
            store,
            model,
            batch_size=settings.embedding.batch_size,
            progress=progress,
            keep_versions=settings.index.keep_versions,
            on_stage=lambda msg: print(f"... {msg}", file=out),
        )
    finally:
        store.close()
    loading = 0.0  # the model's load time is reported on its own line, not as index time
    if isinstance(model, LazyEmbedder):
        loading = model.load_seconds
        if not model.loaded:
            print(f"model: {model.model_id}, not loaded (nothing to embed)", file=out)
    if report.superseded:  # another re-index switched the live pointer after this one
        state = f"published, but not live: another re-index has since made {report.live_after} live"
    else:
        state = "published and live" if report.changed else "already up to date"
    print(
        f"version {report.version}: {state}\n"
        f"  routes {report.routes}, examples {report.examples}: "
        f"embedded {report.embedded}, reused {report.reused}\n"
        f"  index time {report.seconds - loading:.2f} s, total {time.perf_counter() - started:.1f} s"
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
        print(f"  re-embed everything: {plan.reembed_reason}", file=out)
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
