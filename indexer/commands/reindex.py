"""`python -m indexer [reindex] [--dry-run]`: validate routes/, embed what changed, publish and
switch the live pointer (the default command)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, TextIO

from indexer.command import Command
from indexer.defaults import REPLACE_FLAG, SWITCH_FLAG

if TYPE_CHECKING:
    from indexer.context import Context
    from router_core import Embedder, IndexStore, ReindexPlan, ReindexReport, RouterSettings


def configure(parser: argparse.ArgumentParser) -> None:
    """--dry-run and the guard on the service's index (also accepted before the command name)."""
    parser.add_argument(
        "--dry-run", action="store_true", default=argparse.SUPPRESS, help="print what would change; write nothing"
    )
    parser.add_argument(
        REPLACE_FLAG,
        action="store_true",
        default=argparse.SUPPRESS,
        help="allow publishing a routes directory other than the configured one (ROUTER_ROUTES_DIR) "
        "into the configured index, the one the service serves",
    )
    parser.add_argument(
        SWITCH_FLAG,
        action="store_true",
        default=argparse.SUPPRESS,
        help="allow re-embedding the index with the configured model (ROUTER_EMBEDDING__MODEL) when it "
        "was built with another; naming the model with --model allows it too",
    )


def run(ctx: Context, args: argparse.Namespace) -> int:
    """Re-index (every route set of a routes root, unless `--set` names one, each on its own);
    on failure say on stderr what it left unchanged (exit 2 for invalid routes or a refused
    publish, 1 otherwise; the worst of the sets)."""
    from indexer.context import model_for
    from indexer.hints import configured_for
    from router_core import route_sets_of

    found = route_sets_of(ctx.settings)
    if ctx.settings.route_set_origin is not None or found.layout == "single":
        return _run_one(ctx, args, ctx.settings, ctx.configured, ctx.embedder)
    # One model for every set (loaded when the first set needs it).
    dry_run = bool(getattr(args, "dry_run", False))
    model = model_for(ctx.settings, ctx.embedder, quiet=not ctx.progress, out=ctx.out, may_load=not dry_run)
    codes = []
    for name in found.names:
        print(f"route set {name} ({found.get(name).routes_dir}):", file=ctx.out)
        settings = found.settings_for(ctx.settings, name)
        codes.append(_run_one(ctx, args, settings, configured_for(ctx.configured, name), model))
    failed = [name for name, code in zip(found.names, codes, strict=True) if code]
    if failed:
        print(
            f"error: {len(failed)} of {len(codes)} route sets not re-indexed ({', '.join(failed)}); "
            "the other sets were, and a failed set's live index is unchanged",
            file=sys.stderr,
        )
    return max(codes)


def _run_one(
    ctx: Context,
    args: argparse.Namespace,
    settings: RouterSettings,
    configured: RouterSettings,
    embedder: Embedder | None,
) -> int:
    from indexer.context import CommandRefused, print_error
    from router_core import IndexBusy, RouterError, RoutesInvalid

    replace = bool(getattr(args, "replace_configured_index", False))
    try:
        return reindex(
            settings,
            dry_run=bool(getattr(args, "dry_run", False)),
            progress=ctx.progress,
            out=ctx.out,
            embedder=embedder,
            configured=None if replace else configured,
            switch_model=bool(getattr(args, "switch_model", False)) or bool(getattr(args, "model", None)),
        )
    except (CommandRefused, RoutesInvalid) as exc:
        print_error(str(exc))
        print("nothing was indexed; the live index is unchanged.", file=sys.stderr)
        return 2
    except IndexBusy as exc:  # the other re-index may well change the live index: say only what this one did
        print_error(str(exc))
        return 1
    except RouterError as exc:
        print_error(str(exc))
        print("the live index is unchanged.", file=sys.stderr)
        return 1


def reindex(
    settings: RouterSettings,
    *,
    dry_run: bool,
    progress: bool,
    out: TextIO,
    embedder: Embedder | None = None,
    configured: RouterSettings | None = None,
    switch_model: bool = True,
) -> int:
    """Run (or preview) one re-index and print its summary. The model loads only when something
    must be embedded, and never in a dry run. With `configured`, publishing another routes
    directory into the configured index is refused (see `indexer.hints`); without
    `switch_model` (--model or --switch-model given), so is re-embedding an index built with
    another model."""
    from indexer.context import CommandRefused, model_for
    from indexer.hints import publish_refusal
    from indexer.model_loading import LazyEmbedder
    from router_core import load_routes, open_store, plan_reindex, run_reindex

    started = time.perf_counter()
    loaded_before = isinstance(embedder, LazyEmbedder) and embedder.loaded  # another set's re-index loaded it
    table = load_routes(settings.routes_dir, settings.route_files.policy())
    print(
        f"routes: {len(table.routes)} valid in {settings.routes_dir} "
        f"({sum(len(r.examples) for r in table.routes)} examples)",
        file=out,
    )
    refusal = None if configured is None else publish_refusal(settings, configured)
    if refusal and not dry_run:
        raise CommandRefused(refusal)
    store = open_store(settings.index)
    try:
        model = model_for(settings, embedder, quiet=not progress, out=out, may_load=not dry_run)
        switch = _model_switch(settings, store, model, allowed=switch_model)
        if dry_run:
            print_plan(plan_reindex(table, store, model, check_vectors=False), out)
            if isinstance(model, LazyEmbedder) and not model.loaded:
                print(f"model: {model.model_id}, not loaded (a dry run)", file=out)
            for why in (refusal, switch):
                if why:
                    print(f"note: a re-index would be refused: {why}", file=out)
            return 0
        if switch:
            raise CommandRefused(switch)
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
    print_report(report, model, started, out, loaded_before=loaded_before)
    return 0


def _model_switch(settings: RouterSettings, store: IndexStore, model: Embedder, *, allowed: bool) -> str | None:
    """Why this re-index may not re-embed the live index with `model` (built with another one,
    and neither --model nor --switch-model given), or None. A model that is not loaded takes
    its dimension from a live version built with it."""
    from indexer.model_loading import LazyEmbedder
    from router_core import live_to_replace

    live = live_to_replace(store)  # a dangling live pointer is what a re-index repairs
    if live is None:
        return None
    manifest = store.manifest(live)
    if isinstance(model, LazyEmbedder):
        model.assume_dimension_from(manifest.model_id, manifest.dimension)
    if manifest.model_id == model.model_id or allowed:
        return None
    return switch_refusal(settings, manifest.model_id, manifest.model_source, model.model_id)


def print_report(
    report: ReindexReport, model: Embedder, started: float, out: TextIO, *, loaded_before: bool = False
) -> None:
    """What the re-index did, its index time (the model's load apart, unless it was loaded
    before) and total time."""
    from indexer.model_loading import LazyEmbedder

    loading = 0.0  # the model's load time is reported on its own line, not as index time
    if isinstance(model, LazyEmbedder):
        loading = 0.0 if loaded_before else model.load_seconds
        if not model.loaded:
            print(f"model: {model.model_id}, not loaded (nothing to embed)", file=out)
    if report.superseded:  # another re-index switched the live pointer after this one
        state = f"published, but not live: another re-index has since made {report.live_after} live"
    else:
        state = "published and live" if report.changed else "already up to date"
    print(
        f"version {report.version}: {state}\n"
        f"  routes {report.routes}, examples {report.examples}"
        + (f", follow-ups {report.follow_ups}" if report.follow_ups else "")
        + (f", replies {report.replies}" if report.replies else "")
        + ": "
        f"embedded {report.embedded}, reused {report.reused}\n"
        f"  index time {report.seconds - loading:.2f} s, total {time.perf_counter() - started:.1f} s"
        + (f"\n  dropped old versions: {', '.join(report.dropped_versions)}" if report.dropped_versions else ""),
        file=out,
    )


def switch_refusal(settings: RouterSettings, built_with: str, source: str | None, model_id: str) -> str:
    """Why re-embedding an index built with another model needs --model or --switch-model."""
    from indexer.hints import index_args, indexer_command, with_model
    from router_core.store import describe_store

    keep = with_model(settings, source or built_with)

    return (
        f"the live index ({describe_store(settings.index)}) was built with model {built_with!r}; this re-index "
        f"would re-embed every example with {model_id!r} (ROUTER_EMBEDDING__MODEL or the default), and "
        f"eval and calibrate would then need that model. To keep the index's model: "
        f"`{indexer_command('reindex', *index_args(keep, settings))}`; to switch, name the model with --model "
        f"or pass {SWITCH_FLAG}."
    )


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


COMMAND = Command(
    name="reindex",
    help="(default) build and switch to a new index version",
    description="Validate the routes directory, embed only the examples that changed and publish "
    "a new index version, then switch the live pointer to it (the service follows).",
    run=run,
    configure=configure,
)
