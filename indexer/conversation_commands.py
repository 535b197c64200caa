"""`eval` and `calibrate` on conversation files, and the LLM step of `eval --llm`.

A conversation file (`{"id", "messages": [...]}` per line, labelled user turns carry `route`)
is routed turn by turn, each turn with the history before it, exactly as the service routes a
chat (router_core.conversation). `eval` prints accuracy on all turns, first turns of a domain,
follow-ups and switches, next to the last message alone, and the misrouted turns with their
context; `calibrate` searches the conversation section of `_router.yaml`
(indexer.conversation_calibration) and writes it with `--write`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any, TextIO

from indexer import report_html
from indexer.context import Context, Live, live_index, refuse_test_file, write_json, write_text
from indexer.conversation_calibration import ConversationCalibration, calibrate_conversations
from indexer.conversations import (
    LabelledConversation,
    Misrouted,
    Prepared,
    TurnTypeScores,
    load_conversations,
    prepare,
)
from indexer.hints import reindex_hint
from indexer.labelled import load_labelled
from indexer.llm_step import LLMOptions, llm_summary, run_llm_step, with_mode
from indexer.off_topic_insertion import OFF_TOPIC_LABEL, insert_off_topic
from indexer.routes_writer import write_conversation_params, write_follow_ups, write_replies
from indexer.tables import pct, text_table
from router_core import ROUTER_FILE, Decision
from router_core.follow_ups import FOLLOW_UPS_FILE
from router_core.labelled_conversations import last_message_alone, turn_type_report
from router_core.params import ConversationParams, specs_of
from router_core.pipeline import RouteRequest, decide, plan, vote_only
from router_core.replies import REPLIES_FILE


# -- eval ---------------------------------------------------------------------------------------
def _prepare(
    ctx: Context,
    live: Live,
    conversations: Sequence[LabelledConversation],
    window: int,
    known: dict[str, Any] | None = None,
) -> Prepared:
    steps = ctx.steps()
    try:
        return prepare(
            conversations,
            live.embedder,
            live.index,
            live.index.table.params,
            max_window=window,
            with_context=True,
            batch_size=ctx.settings.embedding.batch_size,
            progress=steps,
            known=known,
        )
    finally:
        steps.finish()


def run_eval_conversations(
    ctx: Context,
    file: Path,
    *,
    json_path: Path | None,
    html_path: Path | None,
    llm: LLMOptions | None = None,
    off_topic_files: Sequence[Path] = (),
) -> int:
    """`eval CONVERSATIONS.jsonl`: route every labelled turn with its history, as the service
    does (router_core.pipeline), and score it; with `--off-topic FILE` (repeatable), also the
    files' oos queries inserted as off-topic turns."""
    conversations = load_conversations(file)
    off_texts = _off_topic_texts(off_topic_files)
    with live_index(ctx) as live:
        table = live.index.table if llm is None else with_mode(live.index.table, llm)
        conv, params = table.conversation, table.params
        pairs = [(c, label) for c in conversations for label in c.labels]
        print(
            f"evaluating {len(pairs)} labelled turns of {len(conversations)} conversations from {file} "
            f"on index {live.index.version} (strategy {conv.strategy}, window {conv.window}"
            + (f", {len(table.follow_ups)} follow-ups" if table.follow_ups else "")
            + (f", {len(table.replies)} replies" if table.replies else "")
            + ")",
            file=ctx.out,
        )
        requests = [RouteRequest(c.request(label)) for c, label in pairs]
        inserted = insert_off_topic(conversations, off_texts) if off_texts else []
        off_requests = [RouteRequest(c.request(label)) for c in inserted for label in c.labels]
        steps = ctx.steps()
        try:
            # The vote and the conversation rule (mode embedding: what decides before any
            # decision model), then its LLM step; each distinct text, inserted ones too, embedded once.
            routing = live.router.routing([*requests, *off_requests], table=vote_only(table), progress=steps)
        finally:
            steps.finish()
        everything = [*requests, *off_requests]
        alone_table = last_message_alone(vote_only(table))
        alone_all = decide(everything, plan(everything, alone_table), routing.found, alone_table)
        decisions = routing.decisions
        llm_json: dict[str, Any] | None = None
        if llm is not None:
            decisions, run = run_llm_step(table, decisions, everything, llm, progress=ctx.progress)
            llm_json = llm_summary(run, len(decisions), ctx.out)
        off_decisions, off_alone = decisions[len(requests) :], alone_all[len(requests) :]
        decisions, alone = decisions[: len(requests)], alone_all[: len(requests)]
        labels = [label for _, label in pairs]
        turns = turn_type_report(requests, labels, decisions, alone, params.default_route)
        scores, alone_scores, wrong = turns.scores, turns.last_message, turns.misrouted
        _print_turn_scores([("this router", scores), ("last message alone", alone_scores)], ctx.out)
        print("\nreasons: " + ", ".join(f"{r} {n}" for r, n in turns.reasons.items()), file=ctx.out)
        off_json = _off_topic_figures(off_decisions, off_alone, ctx.out) if off_requests else None
        _print_misrouted(wrong[:10], len(wrong), ctx.out)
        meta = {**live.meta, "file": str(file), "conversation": conv.to_dict(), "mode": table.mode}
        report = {
            **turns.to_dict(),
            "off_topic": off_json,
            "llm": llm_json,
            "decisions": [
                {"conversation": label.conversation, "position": label.position, **_decision_dict(d)}
                for label, d in zip(labels, decisions, strict=True)
            ],
        }
        if json_path:
            write_json(json_path, {"meta": meta, "report": report}, ctx.out)
        if html_path:
            write_text(html_path, conversation_page(scores, alone_scores, wrong, meta), ctx.out)
    return 0


def _decision_dict(d: Decision) -> dict[str, Any]:
    return {"route": d.route, "fallback": d.fallback, "reason": d.reason, "decided_by": d.decided_by, "score": d.score}


def _off_topic_texts(files: Sequence[Path]) -> list[str] | None:
    """The distinct oos queries of the `--off-topic FILE`s, in order (None without the option);
    a file without any is refused, naming it."""
    if not files:
        return None
    texts: dict[str, None] = {}
    for f in files:
        found = [q.text for q in load_labelled(f) if q.label == OFF_TOPIC_LABEL]
        if not found:
            raise ValueError(f"{f} holds no query labelled oos to insert as an off-topic turn")
        texts.update(dict.fromkeys(found))
    return list(texts)


def _off_topic_figures(mid: Sequence[Decision], alone: Sequence[Decision], out: TextIO) -> dict[str, Any]:
    """Inserted off-topic turns sent to the default route, mid-chat and alone."""
    n = len(mid)
    mid_share = sum(d.fallback for d in mid) / n if n else 0.0
    alone_share = sum(d.fallback for d in alone) / n if n else 0.0
    print(
        f"\noff-topic queries inserted mid-conversation: {n}; sent to the default route {pct(mid_share)} "
        f"(the same queries alone: {pct(alone_share)})",
        file=out,
    )
    return {"inserted": n, "mid_chat": mid_share, "alone": alone_share}


def _print_turn_scores(rows: Sequence[tuple[str, TurnTypeScores]], out: TextIO) -> None:
    counts = rows[0][1].counts
    headers = ["", *(f"{name} ({counts[name]})" for name in rows[0][1].as_row())]
    print(
        text_table(headers, [(name, *(pct(v) for v in s.as_row().values())) for name, s in rows]),
        file=out,
    )


def _print_misrouted(wrong: Sequence[Misrouted], total: int, out: TextIO) -> None:
    if not wrong:
        return
    shown = f"the first {len(wrong)} of {total}" if total > len(wrong) else f"all {total}"
    print(
        f"\nmisrouted turns, {shown} (the last message of each context is the turn; --html or --json for all):",
        file=out,
    )
    print(
        text_table(
            ["conversation", "turn", "labelled", "decided", "reason", "context"],
            [
                (m.conversation, m.position, m.expected, m.decided, m.reason, " | ".join(t for _, t in m.context[-3:]))
                for m in wrong
            ],
            max_width=60,
        ),
        file=out,
    )


def conversation_page(
    scores: TurnTypeScores, alone: TurnTypeScores, wrong: Sequence[Misrouted], meta: dict[str, Any]
) -> str:
    """The HTML report: turn-type accuracies and every misrouted turn with its context."""
    body = [f"<p class=muted>{escape(json.dumps(meta, default=str))}</p>"]
    body.append(report_html.kpis({name: pct(v) for name, v in scores.as_row().items()}))
    body.append("<h2>Accuracy by kind of turn</h2>")
    body.append(
        report_html.table(
            ["", *scores.as_row()],
            [
                ("this router", *(pct(v) for v in scores.as_row().values())),
                ("last message alone", *(pct(v) for v in alone.as_row().values())),
                ("turns", *(str(scores.counts[k]) for k in scores.as_row())),
            ],
        )
    )
    body.append(f"<h2>Misrouted turns (all {len(wrong)})</h2>")
    for m in wrong:
        lines = "".join(f"<li><b>{escape(role)}</b>: {escape(text)}</li>" for role, text in m.context)
        body.append(
            f"<h3>{escape(m.conversation)} turn {m.position}: labelled "
            f"{escape(m.expected)}, decided {escape(m.decided)} ({escape(m.reason)})"
            f"</h3><ol>{lines}</ol>"
        )
    return report_html.page("Conversation routing", "".join(body))


# -- calibrate ----------------------------------------------------------------------------------
def run_calibrate_conversations(
    ctx: Context,
    file: Path,
    *,
    write: bool,
    allow_test: bool,
    off_topic_files: Sequence[Path],
    min_off_topic: float | None = None,
    json_path: Path | None,
) -> int:
    """`calibrate CONVERSATIONS.jsonl`: search the conversation rule; `--write` stores it."""
    for checked in (file, *off_topic_files):
        refuse_test_file(checked, allow_test)
    conversations = load_conversations(file)
    off_texts = _off_topic_texts(off_topic_files)
    with live_index(ctx) as live:
        table = live.index.table
        # The window calibration scores: the current one unless the grid searches several (then
        # the largest; a context mixes the messages that window reads, so a smaller one is approximated).
        grid = specs_of(ConversationParams)[0].grid
        window = table.conversation.window if len(grid) == 1 else max(*grid, table.conversation.window)
        print(
            f"calibrating the conversation rule on {sum(len(c.labels) for c in conversations)} labelled turns "
            f"of {len(conversations)} conversations from {file} (index {live.index.version})",
            file=ctx.out,
        )
        known: dict[str, Any] = {}  # each distinct text embedded once, conversations and insertions alike
        prepared = _prepare(ctx, live, conversations, window, known)
        off = _prepare(ctx, live, insert_off_topic(conversations, off_texts), window, known) if off_texts else None
        if off is None:
            print(
                "no --off-topic file: the standalone rule's parameters are not searched and no follow-ups "
                "are learnt (what is not measured is not tuned)",
                file=ctx.out,
            )
        result = calibrate_conversations(
            prepared,
            table.params,
            [r.name for r in table.routes],
            table.conversation,
            off_topic=off,
            min_off_topic=min_off_topic,
            max_follow_up_bytes=ctx.settings.route_files.policy().max_file_bytes,
        )
        print_conversation_calibration(result, ctx.out)
        if json_path:
            write_json(json_path, {"meta": {**live.meta, "file": str(file)}, "result": result.to_dict()}, ctx.out)
    if write:
        policy = ctx.settings.route_files.policy()
        # the follow-ups and replies first: the setting was chosen with them, and is not written if
        # they cannot be
        wrote_follow_ups = bool(result.follow_ups) and bool(
            write_follow_ups(ctx.settings.routes_dir, result.follow_ups, policy=policy).changed
        )
        wrote_replies = bool(result.replies) and bool(
            write_replies(ctx.settings.routes_dir, result.replies, policy=policy).changed
        )
        wrote_section = bool(
            write_conversation_params(ctx.settings.routes_dir, result.chosen.conversation, policy=policy).changed
        )
        if wrote_section:
            print(f"\nwrote the conversation section into {ctx.settings.routes_dir}/{ROUTER_FILE}", file=ctx.out)
        if wrote_follow_ups:
            print(
                f"wrote the {len(result.follow_ups)} follow-ups of {file.name} into "
                f"{ctx.settings.routes_dir}/{FOLLOW_UPS_FILE}",
                file=ctx.out,
            )
        if wrote_replies:
            print(
                f"wrote the {len(result.replies)} replies of {file.name} into {ctx.settings.routes_dir}/{REPLIES_FILE}",
                file=ctx.out,
            )
        if wrote_section or wrote_follow_ups or wrote_replies:
            print(f"next: re-index so that it is used: {reindex_hint(ctx.settings, ctx.configured)}", file=ctx.out)
        else:
            print(f"\n{ctx.settings.routes_dir} already holds this setting.", file=ctx.out)
    else:
        learnt = [f"the {len(result.follow_ups)} follow-ups in {FOLLOW_UPS_FILE}"] if result.follow_ups else []
        learnt += [f"the {len(result.replies)} replies in {REPLIES_FILE}"] if result.replies else []
        also = "".join(f" and {part}" for part in learnt)
        print(f"\n(dry run: pass --write to store the conversation section in {ROUTER_FILE}{also})", file=ctx.out)
    return 0


FEW_OFF_TOPIC = 200  # fewer inserted off-topic queries than this: the bar is a rough one


def _print_off_topic_sample(n: int, bar: float, out: TextIO) -> None:
    """How well the off-topic bar is known from `n` queries (one binomial standard error), and
    the advice to add more when they are few."""
    se = math.sqrt(max(bar * (1 - bar), 1 / n) / n)
    print(f"off-topic: {n} queries inserted; their share is known to about +/-{pct(se)} (one standard error)", file=out)
    if n < FEW_OFF_TOPIC:
        print(
            "  few: a setting held to CLINC150 val's 100 missed the bar on test's 1,000 (BENCHMARKS.md, "
            "conversation sets); add more with --off-topic (repeatable)",
            file=out,
        )


def print_conversation_calibration(result: ConversationCalibration, out: TextIO) -> None:
    """The baseline, the current and the chosen setting (in-sample and cross-validated)."""

    def row(name: str, scores: TurnTypeScores, off_topic: float | None) -> tuple[object, ...]:
        off = "-" if off_topic is None else pct(off_topic)
        return (name, *(pct(v) for v in scores.as_row().values()), pct(scores.macro), off)

    headers = ["", "all", "first of domain", "follow-up", "switch", "objective (mean)", "off-topic -> default"]
    rows = [
        row("last message alone", result.last_message.scores, result.last_message.off_topic),
        row("current setting", result.current.scores, result.current.off_topic),
        row("chosen, in-sample (flatters)", result.chosen.scores, result.chosen.off_topic),
    ]
    cv = result.cross_validated
    if cv is not None:
        rows.append(row(f"chosen, cross-validated ({cv.folds} folds)", cv.scores, cv.off_topic))
    print(text_table(headers, rows), file=out)
    bar = "" if result.min_off_topic is None else f"; {result.feasible} send >= {pct(result.min_off_topic)} off-topic"
    print(f"\n{result.settings} settings searched over {', '.join(result.searched)}{bar}", file=out)
    if result.min_off_topic is not None and result.off_topic_turns:
        _print_off_topic_sample(result.off_topic_turns, result.min_off_topic, out)
    print("chosen: " + ", ".join(f"{k}={v}" for k, v in result.chosen.conversation.to_dict().items()), file=out)
    if result.follow_ups:
        print(
            f"follow-ups: {len(result.follow_ups)} learnt from the file (router_core.follow_ups); every figure "
            "above scores each turn against those of the other conversations only",
            file=out,
        )
    if result.replies:
        print(
            f"replies: {len(result.replies)} learnt from the file (router_core.replies: the chance of a new topic "
            "after an agent message); every figure above scores each turn against those of the other "
            "conversations only",
            file=out,
        )
    if cv is not None:
        print(
            f"cross-validated: the whole search run on {cv.folds - 1} of {cv.folds} parts of the conversations "
            "(split by id) and scored on the part left out, for each part: the figure to expect on "
            "conversations the search never saw",
            file=out,
        )
