"""Conversation routing on SGD and MultiWOZ side by side: calibrated on itself and transferred.

    .venv/bin/python -m bench.conversation_sets [--datasets ../shared/datasets] [--write] [--json PATH]

For each set (`sgd_multiturn`, `multiwoz_multiturn`): routes imported from `routes_train.jsonl`
as `python -m indexer import` writes them (threshold 0.45, k 5, base MiniLM), the 400 dev
conversations, CLINC150 train's and val's out-of-scope queries (200) inserted as off-topic turns
for calibration and CLINC150 test's (1,000) for the report. Every figure goes through the
routing pipeline (`Prepared.decide`: the service's own path) or `calibrate_conversations`
(what `python -m indexer calibrate` runs):

- the last message alone, and the rule with its shipped defaults (no calibration);
- calibrated on the set itself: on the tune part of the sha256(id) parity split, scored on the
  report part; and 5-fold cross-validated (each fold's search scored on the fold it never saw);
  with the follow-ups and replies learnt from the calibration file (router_core.follow_ups,
  router_core.replies; each turn meeting only those of the other conversations) and, for
  comparison, without either;
- transferred: the setting, the follow-ups and the replies calibrated on the whole other set,
  scored on this one;
- off-topic: CLINC150 test's out-of-scope queries inserted mid-conversation, the share sent to
  the default route, against the same queries sent alone;
- the turn after an off-topic message: a later labelled turn with an off-topic query and the
  default agent's reply inserted just before it, against the same turn uninterrupted; the reply
  is the route set's canned default reply (which the rule recognises and skips) or another text
  (as an LLM default agent answers).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.conversation import part_of
from bench.report import write_named_section
from indexer.conversation_calibration import ConversationCalibration, calibrate_conversations
from indexer.conversations import (
    LabelledConversation,
    Prepared,
    TurnTypeScores,
    load_conversations,
    prepare,
    score_turns,
)
from indexer.follow_up_bank import bank_vectors, follow_up_owners, held_out_similarity
from indexer.importer import write_routes_from_jsonl
from indexer.labelled import is_fallback_label, load_labelled
from indexer.off_topic_insertion import insert_off_topic, interrupt_with_off_topic
from indexer.reply_bank import held_out_chances, reply_bank_of, reply_owners
from router_core import CannedAgent, Embedder, OpenIndex, load_embedder, load_routes, run_reindex
from router_core.conversation import content_words
from router_core.conversation_engine import ConversationBatch, related
from router_core.conversation_words import FUNCTION_WORDS
from router_core.decision import decide_many
from router_core.follow_ups import best_similarity
from router_core.params import ConversationParams, DecisionParams, specs_of
from router_core.store import EdgeStore

SETS = {"SGD": "sgd_multiturn", "MultiWOZ": "multiwoz_multiturn"}
REPLY = "Sorry, I can't help with that request."
TYPES = ("all", "first of domain", "follow-up", "switch")


@dataclass(frozen=True)
class DataSet:
    """One multi-turn set, prepared once: every text embedded and searched a single time."""

    name: str
    params: DecisionParams
    route_names: tuple[str, ...]
    dev: Prepared
    tune: Prepared
    report: Prepared
    off_val: Prepared  # CLINC150 train and val oos inserted into the whole dev set (calibration)
    off_val_tune: Prepared  # ... into the tune part
    off_test: Prepared  # CLINC150 test oos inserted (report)
    plain: Prepared  # labelled turns as they are ...
    interrupted: Prepared  # ... and with an off-topic exchange just before them (the canned default reply)
    interrupted_llm: Prepared  # ... the same with a reply the rule cannot recognise (an LLM default agent)


def load_set(
    name: str, folder: Path, oos_val: Sequence[str], oos_test: Sequence[str], embedder: Embedder, index: OpenIndex
) -> DataSet:
    """Prepare every file of one set against its index."""
    conversations = load_conversations(folder / "dev_conversations.jsonl")
    tune = [c for c in conversations if part_of(c.id) == "tune"]
    params = index.table.params
    window = max(*specs_of(ConversationParams)[0].grid, ConversationParams().window)
    known: dict[str, Any] = {}

    def prep(convs: Sequence[LabelledConversation]) -> Prepared:
        return prepare(convs, embedder, index, params, max_window=window, with_context=True, known=known)

    default_agent = index.table.default_agent
    canned = default_agent.reply if isinstance(default_agent, CannedAgent) else REPLY
    plain, interrupted = interrupt_with_off_topic(conversations, oos_test, reply=canned, seed=2)
    _, interrupted_llm = interrupt_with_off_topic(conversations, oos_test, reply=REPLY, seed=2)
    return DataSet(
        name=name,
        params=params,
        route_names=tuple(r.name for r in index.table.routes),
        dev=prep(conversations),
        tune=prep(tune),
        report=prep([c for c in conversations if part_of(c.id) == "report"]),
        off_val=prep(insert_off_topic(conversations, oos_val)),
        off_val_tune=prep(insert_off_topic(tune, oos_val)),
        off_test=prep(insert_off_topic(conversations, oos_test, seed=1)),
        plain=prep(plain),
        interrupted=prep(interrupted),
        interrupted_llm=prep(interrupted_llm),
    )


def routed(p: Prepared, params: DecisionParams, conv: ConversationParams) -> list[str]:
    """Each labelled turn's route, through the service's own function."""
    return [d.route for d in p.decide(params, conv)]


def scores(p: Prepared, params: DecisionParams, conv: ConversationParams) -> TurnTypeScores:
    """Accuracy per turn type of one setting on a prepared file."""
    return score_turns(routed(p, params, conv), p.labels, params.default_route)


def row(s: TurnTypeScores) -> dict[str, Any]:
    """The four accuracies and the counts."""
    return {**s.as_row(), "counts": s.counts}


def off_topic_share(ds: DataSet, conv: ConversationParams) -> float:
    """Inserted test off-topic turns sent to the default route."""
    decided = routed(ds.off_test, ds.params, conv)
    return sum(r == ds.params.default_route for r in decided) / len(decided)


def after_off_topic(ds: DataSet, conv: ConversationParams, *, llm_reply: bool = False) -> dict[str, Any]:
    """Accuracy of a labelled turn uninterrupted and right after an off-topic exchange (answered
    by the canned default reply, or by another text with `llm_reply`), over all inserted
    queries and over those the router sends to the default route when alone."""
    queries = [r[-3].text for r in ds.interrupted_llm.requests]  # the query, the reply, the turn
    fell_back = [d.fallback for d in decide_many([ds.interrupted_llm.neighbours[q] for q in queries], ds.params)]
    plain = [r == g.route for r, g in zip(routed(ds.plain, ds.params, conv), ds.plain.labels, strict=True)]
    interrupted = ds.interrupted_llm if llm_reply else ds.interrupted
    after = [r == g.route for r, g in zip(routed(interrupted, ds.params, conv), interrupted.labels, strict=True)]

    def acc(values: Sequence[bool], keep: Sequence[bool]) -> float:
        kept = [v for v, k in zip(values, keep, strict=True) if k]
        return sum(kept) / len(kept) if kept else 0.0

    every = [True] * len(plain)
    return {
        "n": len(plain),
        "n_fallback_alone": sum(fell_back),
        "plain": acc(plain, every),
        "after": acc(after, every),
        "plain_fallback_alone": acc(plain, fell_back),
        "after_fallback_alone": acc(after, fell_back),
    }


def word_list_ablation(ds: DataSet) -> dict[str, Any]:
    """Why step 2 counts content words with an English list: for the list, function words only
    and no list (every word counts), the share of labelled in-domain turns that step 2 would
    take for an off-topic request (own vote falls back, >= N words, unrelated under cosine c)
    at the cheapest (N, c) that recognises at least as many inserted test off-topic queries as
    the list does with the defaults."""
    defaults = ConversationParams()
    counters = {
        "the list": content_words,
        "function words only": lambda t: content_words(t, FUNCTION_WORDS),
        "no list": lambda t: content_words(t, frozenset()),
    }
    dev_batch = ds.dev.batch(ds.params, ds.route_names)
    off_batch = ds.off_test.batch(ds.params, ds.route_names)
    in_domain = np.array([not is_fallback_label(g.route, ds.params.default_route) for g in ds.dev.labels])
    dev_close, off_close = related(dev_batch, defaults.window), related(off_batch, defaults.window)

    def flagged(p: Prepared, batch: ConversationBatch, close: Any, count: Any, n: int, c: float) -> Any:
        words = np.array([count(lay.last.text) for lay in p.layouts])
        return (batch.own_route < 0) & ~batch.single & (words >= n) & (close < c)

    target = float(flagged(ds.off_test, off_batch, off_close, content_words, defaults.standalone_words, 0.25).mean())
    out: dict[str, Any] = {"recall_at_least": target}
    for name, count in counters.items():
        options = []
        for n, c in itertools.product(range(1, 7), (0.2, 0.25, 0.3, 0.35, 0.4)):
            recall = float(flagged(ds.off_test, off_batch, off_close, count, n, c).mean())
            cost = float((flagged(ds.dev, dev_batch, dev_close, count, n, c) & in_domain).mean())
            if recall >= target:
                options.append((cost, recall, n, c))
        cost, recall, n, c = min(options) if options else (float("nan"), float("nan"), 0, 0.0)
        out[name] = {"cost": cost, "recall": recall, "words": n, "similarity": c}
    return out


def separation(ds: DataSet, at: float = 0.5) -> dict[str, float]:
    """How well known follow-ups tell follow-ups from off-topic requests, held out: the share
    of the report part's follow-ups, and of CLINC150 test's out-of-scope queries, at cosine
    `at` or more to a follow-up of the tune part."""
    bank = bank_vectors(ds.tune, list(follow_up_owners(ds.tune, ds.params)))
    follow_ups = [
        lay.last.text
        for lay, label, turns in zip(ds.report.layouts, ds.report.labels, ds.report.requests, strict=True)
        if not label.first_of_domain and sum(t.role == "user" for t in turns) > 1
    ]
    off = [lay.last.text for lay in ds.off_test.layouts]

    def share(texts: Sequence[str], vectors: Any) -> float:
        best = best_similarity(np.stack([vectors[t] for t in texts]), bank)
        return float((best >= at).mean())

    return {"at": at, "follow_ups": share(follow_ups, ds.report.vectors), "off_topic": share(off, ds.off_test.vectors)}


def calibrated(
    ds: DataSet, defaults: ConversationParams, *, folds: int, learn: bool = True
) -> tuple[ConversationCalibration, float]:
    """Calibration on the whole dev set (with the cross-validated estimate), and its time;
    `learn`: learning the file's follow-ups and replies, as `python -m indexer calibrate` does."""
    started = time.perf_counter()
    result = calibrate_conversations(
        ds.dev,
        ds.params,
        ds.route_names,
        defaults,
        off_topic=ds.off_val,
        folds=folds,
        learn_follow_ups=learn,
        learn_replies=learn,
    )
    return result, time.perf_counter() - started


def held_out(p: Prepared, source: Prepared, params: DecisionParams) -> Prepared:
    """`p` (turns of `source`'s conversations) against the follow-ups and replies learnt from
    `source`, each turn meeting only those of the other conversations, as calibration scores them."""
    values = held_out_similarity(p, source, follow_up_owners(source, params))
    best: dict[str, float] = {}
    for lay, v in zip(p.layouts, values, strict=True):
        best[lay.last.text] = max(best.get(lay.last.text, -np.inf), float(v))
    return replace(p, follow_up=best, reply_chance=held_out_chances(p, source, reply_owners(source, params)))


OFF_TOPIC_SPLITS = ("train", "val")  # CLINC150's splits whose oos queries calibration inserts (README's command)


def off_topic_queries(datasets: Path, split: str) -> list[str]:
    """CLINC150's out-of-scope queries of one split (`train` and `val`: calibration, `test`: the report)."""
    return [q.text for q in load_labelled(datasets / "clinc150" / f"{split}.jsonl") if q.label == "oos"]


def indexed_sets(datasets: Path, embedder: Embedder) -> Iterator[tuple[str, Path, OpenIndex]]:
    """Each set's name, folder and index (its routes imported from `routes_train.jsonl`, indexed
    in a temporary directory), open until the next set is asked for."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in SETS.items():
            routes, data = Path(tmp) / f"{folder}-routes", Path(tmp) / f"{folder}-data"
            write_routes_from_jsonl(datasets / folder / "routes_train.jsonl", routes)
            run_reindex(load_routes(routes), EdgeStore(data), embedder)
            store = EdgeStore(data)
            live = store.live_version()
            assert live is not None
            index = store.open_version(live)
            try:
                yield name, datasets / folder, index
            finally:
                index.close()
                store.close()


def load_sets(datasets: Path) -> dict[str, DataSet]:
    """Both sets, indexed and prepared."""
    oos_val = [q for split in OFF_TOPIC_SPLITS for q in off_topic_queries(datasets, split)]
    oos_test = off_topic_queries(datasets, "test")
    embedder = load_embedder()
    return {
        name: load_set(name, folder, oos_val, oos_test, embedder, index)
        for name, folder, index in indexed_sets(datasets, embedder)
    }


def measure(loaded: dict[str, DataSet], defaults: ConversationParams) -> dict[str, Any]:
    """Every figure of the section, for the rule with `defaults` as the shipped setting."""
    full = {name: calibrated(ds, defaults, folds=5) for name, ds in loaded.items()}
    bare = {name: calibrated(ds, defaults, folds=5, learn=False)[0] for name, ds in loaded.items()}
    out: dict[str, Any] = {"sets": {}}
    for name, ds in loaded.items():
        other = next(n for n in loaded if n != name)
        result, seconds = full[name]
        mine, theirs = result.chosen.conversation, full[other][0].chosen.conversation
        their_bank = bank_vectors(loaded[other].dev, full[other][0].follow_ups)
        their_replies = reply_bank_of(loaded[other].dev, full[other][0].replies)
        tuned = calibrate_conversations(
            ds.tune, ds.params, ds.route_names, defaults, off_topic=ds.off_val_tune, folds=0
        )
        tune, tune_bank = tuned.chosen.conversation, bank_vectors(ds.tune, tuned.follow_ups)
        tune_replies = reply_bank_of(ds.tune, tuned.replies)
        cv, bare_cv = result.cross_validated, bare[name].cross_validated
        assert cv is not None
        assert bare_cv is not None
        alone = result.last_message.scores
        own_bank = bank_vectors(ds.dev, result.follow_ups)
        mine_ds = replace(
            ds,
            # the follow-ups as served; the replies held out (an off-topic turn replaces a turn of the
            # conversation whose reply would otherwise tell what followed it)
            off_test=replace(
                ds.off_test.with_follow_ups(own_bank),
                reply_chance=held_out_chances(ds.off_test, ds.dev, reply_owners(ds.dev, ds.params)),
            ),
            plain=held_out(ds.plain, ds.dev, ds.params),
            interrupted=held_out(ds.interrupted, ds.dev, ds.params),
            interrupted_llm=held_out(ds.interrupted_llm, ds.dev, ds.params),
        )
        theirs_ds = replace(ds, off_test=ds.off_test.with_follow_ups(their_bank).with_replies(their_replies))
        out["sets"][name] = {
            "rows": {
                "last message alone": row(alone),
                "defaults (no follow-ups)": row(scores(ds.dev, ds.params, defaults)),
                "calibrated on itself without follow-ups or replies, 5-fold cross-validated": row(bare_cv.scores),
                "calibrated on itself, in-sample": row(result.chosen.scores),
                "calibrated on itself, 5-fold cross-validated": row(cv.scores),
                "calibrated on the other set (transfer)": row(
                    scores(ds.dev.with_follow_ups(their_bank).with_replies(their_replies), ds.params, theirs)
                ),
                "the other set's setting, no follow-ups or replies": row(scores(ds.dev, ds.params, theirs)),
                "the other set's setting, this set's follow-ups and replies (held out)": row(
                    scores(held_out(ds.dev, ds.dev, ds.params), ds.params, theirs)
                ),
            },
            "report_part": {
                "last message alone": row(scores(ds.report, ds.params, ConversationParams(strategy="last_message"))),
                "defaults (no follow-ups)": row(scores(ds.report, ds.params, defaults)),
                "calibrated on the tune part": row(
                    scores(ds.report.with_follow_ups(tune_bank).with_replies(tune_replies), ds.params, tune)
                ),
            },
            "off_topic": {
                "alone": sum(d.fallback for d in ds.off_test.own) / len(ds.off_test.own),
                "defaults (no follow-ups)": off_topic_share(ds, defaults),
                "calibrated on itself without follow-ups or replies": off_topic_share(
                    ds, bare[name].chosen.conversation
                ),
                "calibrated on itself": off_topic_share(mine_ds, mine),
                "calibrated on itself, 5-fold cross-validated (CLINC150 train and val)": cv.off_topic or 0.0,
                "calibrated on the other set": off_topic_share(theirs_ds, theirs),
            },
            "after_off_topic": {
                "defaults (no follow-ups), the canned default reply": after_off_topic(ds, defaults),
                "defaults (no follow-ups), another reply": after_off_topic(ds, defaults, llm_reply=True),
                "calibrated on itself, the canned default reply": after_off_topic(mine_ds, mine),
                "calibrated on itself, another reply": after_off_topic(mine_ds, mine, llm_reply=True),
            },
            "follow_ups": len(result.follow_ups),
            "replies": len(result.replies),
            "separation": separation(ds),
            "word_list": word_list_ablation(ds),
            "other": other,
            "chosen": mine.to_dict(),
            "chosen_tune": tune.to_dict(),
            "cv_chosen": [c.tunable_values() for c in cv.chosen],
            "cv_off_topic": cv.off_topic,
            "calibration_s": round(seconds, 1),
            "settings": result.settings,
            "threshold": ds.params.threshold,
            "parts": {"tune": len({g.conversation for g in ds.tune.labels}), "report": len(ds.report.labels)},
        }
    out["defaults"] = defaults.to_dict()
    return out


def cli_timings(datasets: Path) -> dict[str, Any]:
    """Wall time of `python -m indexer calibrate` (with --off-topic) and `eval` on the SGD dev
    conversations, each a process of its own as a user runs it (imports and model load included)."""
    folder = datasets / SETS["SGD"]
    conversations = str(folder / "dev_conversations.jsonl")
    out: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        routes, data = Path(tmp) / "routes", Path(tmp) / "data"
        where = ["--routes", str(routes), "--data-dir", str(data), "--quiet"]
        write_routes_from_jsonl(folder / "routes_train.jsonl", routes)
        _indexer(["reindex", *where, "--replace-configured-index"])
        out["calibrate_s"] = _indexer(
            [
                "calibrate",
                conversations,
                *(f"--off-topic={datasets / 'clinc150' / f'{split}.jsonl'}" for split in OFF_TOPIC_SPLITS),
                *where,
            ]
        )
        out["eval_s"] = _indexer(["eval", conversations, *where])
    out["load_after"] = os.getloadavg()[0]
    return out


def _indexer(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "indexer", *args], check=True, capture_output=True)
    return round(time.perf_counter() - started, 1)


def run(datasets: Path, *, timings: bool = True) -> dict[str, Any]:
    loaded = load_sets(datasets)
    out = measure(loaded, ConversationParams())
    sgd = loaded["SGD"]
    out["texts"] = {"sgd_dev": len(sgd.dev.neighbours), "sgd_dialogues": len(sgd.dev.conversations)}
    if timings:
        out["timings"] = cli_timings(datasets)
    return out


def render(out: dict[str, Any]) -> str:
    """The BENCHMARKS.md section."""
    names = list(out["sets"])

    def pct(v: float) -> str:
        return f"{v * 100:.1f}%"

    def cells(r: dict[str, Any]) -> list[str]:
        return [pct(r[t]) for t in TYPES]

    first = out["sets"][names[0]]
    lines = [
        "## Conversation routing on two data sets (SGD and MultiWOZ)",
        "",
        "Command: `.venv/bin/python -m bench.conversation_sets --write`. Each set's routes imported from its "
        "`routes_train.jsonl` (threshold 0.45, k 5, base MiniLM); its 400 dev conversations "
        + ", ".join(
            f"{n}: {s['rows']['last message alone']['counts']['all']} labelled turns "
            f"({s['rows']['last message alone']['counts']['first of domain']} first of a domain, "
            f"{s['rows']['last message alone']['counts']['switch']} switches)"
            for n, s in out["sets"].items()
        )
        + ". Calibration inserts CLINC150 train's and val's out-of-scope queries (200) as off-topic turns; "
        "the off-topic figures insert CLINC150 test's. Turn types: all / first of a domain / follow-ups / switches.",
        "",
        "| | " + " | ".join(f"{n} {t}" for n in names for t in ("all", "first", "follow-up", "switch")) + " |",
        "|---|" + "---|" * (4 * len(names)),
    ]
    for label in first["rows"]:
        lines.append(
            f"| {label} | " + " | ".join(c for n in names for c in cells(out["sets"][n]["rows"][label])) + " |"
        )
    lines += [
        "",
        "Report part of the sha256(id) parity split (calibrated on the tune part, scored on the report part):",
        "",
        "| | " + " | ".join(f"{n} {t}" for n in names for t in ("all", "first", "follow-up", "switch")) + " |",
        "|---|" + "---|" * (4 * len(names)),
    ]
    for label in first["report_part"]:
        lines.append(
            f"| {label} | " + " | ".join(c for n in names for c in cells(out["sets"][n]["report_part"][label])) + " |"
        )
    lines += ["", "| off-topic queries sent to the default route | " + " | ".join(names) + " |", "|---|---|---|"]
    for label in first["off_topic"]:
        lines.append(f"| {label} | " + " | ".join(pct(out["sets"][n]["off_topic"][label]) for n in names) + " |")
    lines += [
        "",
        "| the turn after an off-topic message (accuracy) | "
        + " | ".join(f"{n} uninterrupted | {n} after" for n in names)
        + " |",
        "|---|" + "---|" * (2 * len(names)),
    ]
    subsets = (
        ("all inserted queries", "plain", "after"),
        ("queries that fall back alone", "plain_fallback_alone", "after_fallback_alone"),
    )
    for label in first["after_off_topic"]:
        for subset, a, b in subsets:
            figures = [out["sets"][n]["after_off_topic"][label] for n in names]
            lines.append(f"| {label}, {subset} | " + " | ".join(f"{pct(f[a])} | {pct(f[b])}" for f in figures) + " |")
    lines += [
        "",
        "Why step 2 counts content words with an English list (`router_core/conversation_words.py`): the share of "
        "labelled in-domain turns it would take for off-topic requests, at the cheapest setting that recognises as "
        "many inserted test off-topic queries as the list does with the defaults:",
        "",
        "| words counted | " + " | ".join(names) + " |",
        "|---|---|---|",
    ]
    for counter in ("the list", "function words only", "no list"):
        cells_ = []
        for n in names:
            w = out["sets"][n]["word_list"][counter]
            cells_.append(f"{pct(w['cost'])} (recall {pct(w['recall'])})")
        lines.append(f"| {counter} | " + " | ".join(cells_) + " |")
    lines.append("")
    for n in names:
        s = out["sets"][n]
        chosen = ", ".join(f"{k}={v}" for k, v in s["chosen"].items() if k != "strategy")
        lines.append(
            f"{n}: calibrated in {s['calibration_s']} s over {s['settings']} settings (with the 5-fold estimate); "
            f"chosen {chosen}."
        )
        lines.append("")
    lines += [
        "Follow-ups (router_core.follow_ups) learnt by calibration from each dev set: "
        + ", ".join(f"{n} {out['sets'][n]['follow_ups']}" for n in names)
        + " distinct labelled follow-up turns. Held out (the tune part's follow-ups against the report part): "
        + ", ".join(
            f"{n} {pct(out['sets'][n]['separation']['follow_ups'])} of follow-ups and "
            f"{pct(out['sets'][n]['separation']['off_topic'])} of CLINC150 test's out-of-scope queries"
            for n in names
        )
        + f" are at cosine {first['separation']['at']} or more to a known follow-up. "
        "In-sample and cross-validated, each turn meets only the follow-ups "
        "of the other conversations; transfer uses the other set's follow-ups and setting; the off-topic rows "
        "of a calibrated setting use its set's follow-ups (the turn after an off-topic message: those of the "
        "other conversations).",
        "",
        "Replies (router_core.replies: each agent message before a labelled turn, with how often that turn was "
        "the first of its domain) learnt by calibration from each dev set: "
        + ", ".join(f"{n} {out['sets'][n]['replies']}" for n in names)
        + " distinct agent messages. A user message right after an agent message may change topic with at least "
        "the share of new topics after the 10 nearest known replies (weighed by their counts). Like the "
        "follow-ups, each turn meets only the replies of the other conversations in-sample, cross-validated, "
        "in the off-topic rows and after an off-topic message; transfer uses the other set's.",
        "",
    ]
    defaults = ", ".join(f"{k}={v}" for k, v in out["defaults"].items() if k != "strategy")
    lines += [f"Defaults: {defaults}.", ""]
    t = out.get("timings")
    if t:
        texts = out["texts"]
        lines += [
            "Speed, each command a process of its own as a user runs it (imports and model load included), "
            f"load average {t['load_before']:.1f} before and {t['load_after']:.1f} after on this 2-core machine: "
            f"`python -m indexer calibrate dev_conversations.jsonl --off-topic clinc150/train.jsonl "
            "--off-topic clinc150/val.jsonl` on the "
            f"{texts['sgd_dialogues']} SGD dialogues {t['calibrate_s']} s (target <= 120 s); "
            f"`python -m indexer eval dev_conversations.jsonl` {t['eval_s']} s for {texts['sgd_dev']} distinct texts "
            f"(target for 1,000 dialogues, about 23,400 texts: <= 60 s).",
            "",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.conversation_sets", description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--write", action="store_true", help="rewrite the conversation-sets section of BENCHMARKS.md")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--no-timings", action="store_true", help="skip timing the indexer commands")
    args = parser.parse_args(argv)
    out = run(args.datasets, timings=not args.no_timings)
    text = render(out)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    if args.write:
        write_named_section(Path("BENCHMARKS.md"), "conversation-sets", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
