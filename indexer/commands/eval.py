"""`python -m indexer eval FILE`: route labelled queries, or every labelled turn of labelled
conversations, as the service does (router_core.pipeline) on the live index, and score them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from indexer.command import Command

if TYPE_CHECKING:
    from collections.abc import Sequence

    from indexer.context import Context, Live
    from indexer.labelled import Labelled
    from indexer.llm_step import LLMOptions
    from router_core import Decision, EvalReport, Neighbour


def configure(parser: argparse.ArgumentParser) -> None:
    """The labelled file, and the LLM step's options."""
    parser.add_argument(
        "file", type=Path, help="labelled JSON Lines, or labelled conversations (a 'messages' list per line)"
    )
    parser.add_argument(
        "--llm",
        action="store_true",
        help="run the route set's LLM step for real (modes llm and hybrid; ROUTER_DECIDER__* name the model)",
    )
    parser.add_argument(
        "--mode", choices=("llm", "hybrid"), help="with --llm: evaluate as this mode, whatever the route set's"
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="with --llm: questions in flight at once (default 4)"
    )
    parser.add_argument(
        "--off-topic",
        type=Path,
        action="append",
        metavar="FILE",
        help="conversations: labelled JSON Lines whose oos queries are inserted as off-topic turns and "
        "scored (sent to the default route mid-chat, against alone); repeatable",
    )


def run(ctx: Context, args: argparse.Namespace) -> int:
    """Queries or conversations, by what the file holds. What only --llm or conversations need
    (the LLM clients, the conversation rule) is imported only then: a plain eval starts in a
    second or two."""
    from indexer.conversations import is_conversation_file

    llm = None
    if args.llm:
        from indexer.llm_step import llm_options

        llm = llm_options(ctx.settings, enabled=True, mode=args.mode, concurrency=args.concurrency)
    elif args.mode:
        raise ValueError("--mode applies with --llm only")
    if is_conversation_file(args.file):
        from indexer.conversation_commands import run_eval_conversations

        return run_eval_conversations(
            ctx,
            args.file,
            json_path=args.json_path,
            html_path=args.html_path,
            llm=llm,
            off_topic_files=tuple(args.off_topic or ()),
        )
    if args.off_topic is not None:
        raise ValueError("--off-topic is for a conversations file (a 'messages' list per line)")
    return run_eval(ctx, args.file, json_path=args.json_path, html_path=args.html_path, llm=llm)


def run_eval(
    ctx: Context, file: Path, *, json_path: Path | None, html_path: Path | None, llm: LLMOptions | None = None
) -> int:
    """`eval FILE.jsonl`: route every query as the service does (router_core.pipeline) on the
    live index and score the decisions; with `llm`, the route set's LLM step runs for real."""
    from indexer.context import live_index, write_json
    from indexer.labelled import labelled_for, load_labelled
    from indexer.text_report import print_eval
    from router_core import RouteRequest, evaluate
    from router_core.pipeline import vote_only

    queries = load_labelled(file)
    with live_index(ctx) as live:
        data = labelled_for(live.index.table, queries)
        table = live.index.table
        if llm is not None:
            from indexer.llm_step import with_mode

            table = with_mode(table, llm)
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
            from indexer.llm_step import llm_summary, run_llm_step
            from indexer.tables import pct

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
    from indexer import report_html
    from indexer.context import write_text
    from indexer.labelled import is_fallback_label
    from router_core.evaluation import CURVE_THRESHOLDS, threshold_curve

    params = live.index.table.params
    curve = threshold_curve(neighbours, data.labels, params, CURVE_THRESHOLDS, data.routes)
    fallback = params.default_route
    gold = [fallback if is_fallback_label(g, fallback) else g for g in data.labels]
    predicted = [d.route for d in decisions]
    write_text(path, report_html.eval_page(report, curve, gold, predicted, meta), out)


COMMAND = Command(
    name="eval",
    help="score the live index on labelled JSON Lines",
    description="Accuracy, in-scope accuracy, fallback precision/recall, per-route P/R/F1 and "
    'the most confused route pairs for labelled queries ({"text", "label"} per line; '
    "label `oos` or the default route's name means the query should fall back); for labelled "
    "conversations, accuracy on every kind of turn next to the last message alone.",
    run=run,
    configure=configure,
    reports=True,
)
