"""`python -m indexer [reindex] [--dry-run]`: validate routes, embed, publish, switch.

Exit codes: 0 done, 2 invalid routes or arguments, 1 any other failure (the live index is
then exactly as it was).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from router_core import (
    Embedder,
    IndexSettings,
    RouterError,
    RoutesInvalid,
    load_routes,
    open_store,
    plan_reindex,
    run_reindex,
)
from router_core.reindex import ReindexPlan

COMMANDS = ("reindex",)


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
    return parser


def _index_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--routes", type=Path, help="routes directory (ROUTER_ROUTES_DIR)")
    p.add_argument("--data-dir", type=Path, help="embedded index directory (ROUTER_QDRANT__DATA_DIR)")
    p.add_argument("--model", help="embedding model name or path (ROUTER_EMBEDDING__MODEL)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def settings_from(args: argparse.Namespace, base: IndexSettings | None = None) -> IndexSettings:
    """Settings from the environment, overridden by command-line options."""
    settings = base or IndexSettings()
    update: dict[str, object] = {}
    if args.routes:
        update["routes_dir"] = args.routes
    if args.data_dir:
        update["qdrant"] = settings.qdrant.model_copy(update={"data_dir": args.data_dir})
    if args.model:
        update["embedding"] = settings.embedding.model_copy(update={"model": args.model})
    return settings.model_copy(update=update)


def main(argv: Sequence[str] | None = None, *, out: TextIO = sys.stdout) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    settings = settings_from(args)
    try:
        return reindex(settings, dry_run=args.dry_run, progress=not args.quiet, out=out)
    except RoutesInvalid as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("nothing was indexed; the live index is unchanged.", file=sys.stderr)
        return 2
    except RouterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("the live index is unchanged.", file=sys.stderr)
        return 1


def reindex(settings: IndexSettings, *, dry_run: bool, progress: bool, out: TextIO) -> int:
    """Run (or preview) one re-index and print its summary."""
    started = time.perf_counter()
    table = load_routes(settings.routes_dir)
    print(
        f"routes: {len(table.routes)} valid in {settings.routes_dir} "
        f"({sum(len(r.examples) for r in table.routes)} examples)",
        file=out,
    )
    embedder = Embedder.load(settings.embedding.model, settings.embedding.device)
    loaded = time.perf_counter()
    print(f"model: {embedder.model_id} (dim {embedder.dimension}), loaded in {loaded - started:.1f} s", file=out)
    store = open_store(settings)
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
            keep_versions=settings.qdrant.keep_versions,
            on_stage=lambda msg: print(f"... {msg}", file=out),
        )
    finally:
        store.close()
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
