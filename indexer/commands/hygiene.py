"""`python -m indexer hygiene`: examples nearer to another route than to their own,
near-duplicates across routes and thin routes, from the live version's stored vectors."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.command import Command
from indexer.defaults import DEFAULT_DUPLICATE_SIMILARITY, DEFAULT_MIN_EXAMPLES

if TYPE_CHECKING:
    from indexer.context import Context


def configure(parser: argparse.ArgumentParser) -> None:
    """What counts as a near-duplicate and a thin route, and how many rows to print."""
    parser.add_argument(
        "--duplicate-similarity",
        type=float,
        default=DEFAULT_DUPLICATE_SIMILARITY,
        help=f"cosine at or above which two examples are near-duplicates (default {DEFAULT_DUPLICATE_SIMILARITY})",
    )
    parser.add_argument(
        "--min-examples",
        type=int,
        default=DEFAULT_MIN_EXAMPLES,
        help=f"flag routes with fewer examples (default {DEFAULT_MIN_EXAMPLES})",
    )
    parser.add_argument("--limit", type=int, default=15, help="rows printed per table (default 15)")


def run(ctx: Context, args: argparse.Namespace) -> int:
    """The report, from the options. Given --model, the index must have been built with it."""
    return run_hygiene(
        ctx,
        model=getattr(args, "model", None),
        duplicate_similarity=args.duplicate_similarity,
        min_examples=args.min_examples,
        json_path=args.json_path,
        html_path=args.html_path,
        limit=args.limit,
    )


def run_hygiene(
    ctx: Context,
    *,
    duplicate_similarity: float,
    min_examples: int,
    json_path: Path | None,
    html_path: Path | None,
    limit: int = 15,
    model: str | None = None,
) -> int:
    """`hygiene`: works on the live version's stored vectors, so no model is loaded; `model`
    (--model) only checks that the index was built with it, as eval and calibrate do."""
    from indexer import report_html
    from indexer.context import check_model, missing_index, write_json, write_text
    from indexer.hints import reindex_hint
    from indexer.hygiene import check_hygiene
    from indexer.tables import text_table
    from router_core import IndexMissing, load_routes, open_store
    from router_core.embedding import resolve_model
    from router_core.manifest import fingerprint

    settings, out = ctx.settings, ctx.out
    store = open_store(settings.index)
    try:
        live = store.live_version()
        if live is None:
            raise IndexMissing(missing_index(ctx))
        manifest = store.manifest(live)
        if model is not None:
            check_model(manifest, resolve_model(model)[1])
        stored = store.stored_points(live).examples()  # the follow-ups are no route's examples
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


COMMAND = Command(
    name="hygiene",
    help="find misplaced examples, cross-route duplicates and thin routes",
    description="Report examples nearer to another route than to their own (nearest example "
    "or leave-one-out centroid), near-duplicates across routes and routes with few examples, "
    "from the live index's stored vectors: no model is loaded. --model only checks that the "
    "index was built with that model (as eval and calibrate do).",
    run=run,
    configure=configure,
    reports=True,
)
