"""`python -m indexer review`: the Review tab's work from the command line (its options are
declared in indexer/commands/review.py).

    review list [--queue feedback|uncertain|reviewed|recent] [--limit N]
    review accept ID... [--route ROUTE] [--eval] [--write]   diff and guard; saved with --write
    review right ID... | review dismiss ID...
    review export --out FILE.jsonl                            labelled queries for eval/calibrate

The decision log is the one the service writes (ROUTER_DECISION_LOG__*: SQLite under the data
directory, or PostgreSQL); the planning is the service's own (`router_core.review.plan`). Every
action works on one route set (`--set`, else the default set): its decisions only, and an
accepted example goes into that set's routes folder.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from indexer.context import CommandRefused, Context, live_index
from indexer.hints import reindex_hint
from router_core import DEFAULT_SET, RouterSettings, load_routes
from router_core.decision_log import StoredDecision, database_url
from router_core.decision_log.store import DecisionStore
from router_core.examples_writer import EditRefused, apply
from router_core.labelled import OOS_LABEL
from router_core.review import baseline
from router_core.review.plan import Action, Change, Workspace, eval_queries, plan_change

ACTIONS = ("list", "accept", "right", "dismiss", "export")


def run_review(ctx: Context, args: argparse.Namespace) -> int:
    """Run one review action; 0 done, 2 refused (the message says why)."""
    settings = ctx.settings
    log = settings.decision_log
    if not log.enabled:
        raise CommandRefused("the decision log is off (ROUTER_DECISION_LOG__RECORD=none): nothing to review")
    store = DecisionStore.open(database_url(log, settings.index.data_dir), retention_s=log.retention_s)
    own = set_of(settings)
    try:
        action = args.review_action
        if action == "list":
            _print_rows(ctx, store.queue(args.queue, args.limit, route_set=own), args.queue)
            return 0
        if action == "export":
            return _export(ctx, store, args.out)
        rows = _rows(store, args.ids, own)
        if action in ("right", "dismiss"):
            marked = store.review([r.id for r in rows], "right" if action == "right" else "dismissed")
            print(f"marked {marked} decision(s) {'right' if action == 'right' else 'dismissed'}", file=ctx.out)
            return 0
        return _accept(ctx, store, rows, args)
    except EditRefused as exc:
        raise CommandRefused(str(exc)) from None
    finally:
        store.close()


def set_of(settings: RouterSettings) -> str:
    """The route set a command works on: the one it was narrowed to, else `default`."""
    origin = settings.route_set_origin
    return origin[1] if origin is not None else DEFAULT_SET


def _rows(store: DecisionStore, ids: list[int], route_set: str) -> list[StoredDecision]:
    rows = store.by_ids(ids, route_set=route_set)
    missing = sorted(set(ids) - {r.id for r in rows})
    if missing:
        listed = ", ".join(map(str, missing))
        raise CommandRefused(
            f"no recorded decision with id {listed} in route set {route_set!r} (unknown, expired, or of another "
            "set: pass --set)"
        )
    return rows


def _print_rows(ctx: Context, rows: list[StoredDecision], queue: str) -> None:
    print(f"{queue}: {len(rows)} decision(s)", file=ctx.out)
    for r in rows:
        rec, fb = r.record, r.feedback
        said = "" if fb is None else (" correct" if fb.verdict == "correct" else f" -> should be {fb.expected or '?'}")
        done = f" [{r.review_state}{f' {r.review_route}' if r.review_route else ''}]" if r.review_state else ""
        when = datetime.fromtimestamp(rec.created_at, UTC).strftime("%Y-%m-%d %H:%M")
        print(f"{r.id:>6}  {when}  {rec.route:<20} {rec.score:.3f}{said}{done}  {rec.text[:80]}", file=ctx.out)


def _accept(ctx: Context, store: DecisionStore, rows: list[StoredDecision], args: argparse.Namespace) -> int:
    settings = ctx.settings
    space = Workspace(
        settings.routes_dir,
        args.evals,
        settings.decision_log.eval_file,
        settings.route_files.policy(),
        settings.embedding.batch_size,
    )
    action: Action = "eval" if args.eval else "example"
    with live_index(ctx) as live:
        evals = baseline(live.index, live.embedder, eval_queries(args.evals)) if action == "example" else None
        others = store.queue("feedback", 200, route_set=set_of(settings)) if evals is not None else []
        change = plan_change(rows, action, args.route, live.index, live.embedder, space, evals=evals, others=others)
    _print_change(ctx, change)
    if not change.edit.changed:
        print("nothing to change: the file already holds them", file=ctx.out)
        return 0
    if not args.write:
        print("nothing was written; run again with --write to save this change", file=ctx.out)
        return 0
    apply(change.edit, routes_dir=settings.routes_dir if action == "example" else None, policy=space.policy)
    store.review(change.ids, "accepted" if action == "example" else "evaluated", change.route)
    print(f"saved {change.edit.label}; {len(change.ids)} decision(s) marked reviewed", file=ctx.out)
    if action == "example":
        print(f"next: {reindex_hint(settings, ctx.configured)}", file=ctx.out)
    return 0


def _print_change(ctx: Context, change: Change) -> None:
    print(change.edit.diff or f"(no change to {change.edit.label})", file=ctx.out, end="")
    if change.edit.rewritten:
        print(f"note: {change.edit.label} cannot be edited line by line: it would be rewritten whole", file=ctx.out)
    g = change.guard
    if g is None:
        return
    print(f"guard: {g.summary}", file=ctx.out)
    for name, key in (
        ("in-scope accuracy", "in_scope_accuracy"),
        ("fallback recall", "fallback_recall"),
        ("fallback precision", "fallback_precision"),
    ):
        before, after = getattr(g.eval_before, key), getattr(g.eval_after, key)
        print(
            f"  {name:<20} {100 * before:5.1f}% -> {100 * after:5.1f}%  ({g.eval_before.queries} queries)", file=ctx.out
        )
    for m in g.broken[:10]:
        print(f"  breaks: {m.text!r} ({m.label}): {m.before} -> {m.after}", file=ctx.out)
    for m in g.unfixed[:10]:
        print(f"  still elsewhere: {m.text!r} ({m.label}): -> {m.after}", file=ctx.out)


def labelled_rows(rows: list[StoredDecision], default_route: str) -> list[dict[str, Any]]:
    """`{"text", "label"}` per decision whose right route is known (`oos` for the default route)."""
    out = []
    for r in rows:
        fb = r.feedback
        if r.review_route is not None:
            label = r.review_route
        elif fb is not None and fb.verdict == "wrong" and fb.expected:
            label = fb.expected
        else:  # correct, or marked right: where it went
            label = r.record.route
        out.append({"text": r.record.text, "label": OOS_LABEL if label in (default_route, "default") else label})
    return out


def _export(ctx: Context, store: DecisionStore, path: Path) -> int:
    table = load_routes(ctx.settings.routes_dir, ctx.settings.route_files.policy())
    rows = labelled_rows(store.labelled(route_set=set_of(ctx.settings)), table.params.default_route)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} labelled quer{'y' if len(rows) == 1 else 'ies'} to {path}", file=ctx.out)
    if rows:
        print(f"next: python -m indexer eval {path} (or calibrate, on a validation share)", file=ctx.out)
    return 0
