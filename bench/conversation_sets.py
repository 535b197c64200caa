"""Conversation routing on SGD and MultiWOZ side by side: calibrated on itself and transferred.

    .venv/bin/python -m bench.conversation_sets [--datasets ../shared/datasets] [--write] [--json PATH]

For each set (`sgd_multiturn`, `multiwoz_multiturn`): routes imported from `routes_train.jsonl`
as `python -m indexer import` writes them (threshold 0.45, k 5, base MiniLM), the 400 dev
conversations, CLINC150 val's out-of-scope queries inserted as off-topic turns for calibration
and CLINC150 test's for the report. Every figure goes through `route_conversations` (the
service's own path) or `calibrate_conversations` (what `python -m indexer calibrate` runs):

- the last message alone, and the rule with its shipped defaults (no calibration);
- calibrated on the set itself: on the tune part of the sha256(id) parity split, scored on the
  report part; and 5-fold cross-validated (each fold's search scored on the fold it never saw);
- transferred: the setting calibrated on the whole other set, scored on this one;
- off-topic: CLINC150 test's out-of-scope queries inserted mid-conversation, the share sent to
  the default route, against the same queries sent alone;
- the turn after an off-topic message: a later labelled turn with an off-topic query and the
  default agent's reply inserted just before it, against the same turn uninterrupted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.conversation import part_of
from bench.report import write_named_section
from indexer.conversation_calibration import (
    ConversationCalibration,
    calibrate_conversations,
    insert_off_topic,
    interrupt_with_off_topic,
)
from indexer.conversations import (
    LabelledConversation,
    Prepared,
    TurnTypeScores,
    load_conversations,
    prepare,
    score_turns,
)
from indexer.importer import write_routes_from_jsonl
from indexer.labelled import load_labelled
from router_core import Embedder, load_embedder, load_routes, run_reindex
from router_core.conversation import ConversationParams, route_conversations
from router_core.decision import decide_many
from router_core.params import DecisionParams, specs_of
from router_core.store import EdgeStore
from router_core.store.protocol import OpenIndex

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
    off_val: Prepared  # CLINC150 val oos inserted into the whole dev set (calibration)
    off_val_tune: Prepared  # ... into the tune part
    off_test: Prepared  # CLINC150 test oos inserted (report)
    plain: Prepared  # labelled turns as they are ...
    interrupted: Prepared  # ... and with an off-topic exchange just before them


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

    plain, interrupted = interrupt_with_off_topic(conversations, oos_test, reply=REPLY, seed=2)
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
    )


def routed(p: Prepared, params: DecisionParams, conv: ConversationParams) -> list[str]:
    """Each labelled turn's route, through the service's own function."""
    return [d.route for d in route_conversations(p.requests, p.neighbours, p.vectors, p.own, params, conv)]


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


def after_off_topic(ds: DataSet, conv: ConversationParams) -> dict[str, Any]:
    """Accuracy of a labelled turn uninterrupted and right after an off-topic exchange, over all
    inserted queries and over those the router sends to the default route when alone."""
    queries = [r[-3].text for r in ds.interrupted.requests]  # the query, the reply, the turn
    fell_back = [d.fallback for d in decide_many([ds.interrupted.neighbours[q] for q in queries], ds.params)]
    plain = [r == g.route for r, g in zip(routed(ds.plain, ds.params, conv), ds.plain.labels, strict=True)]
    after = [r == g.route for r, g in zip(routed(ds.interrupted, ds.params, conv), ds.interrupted.labels, strict=True)]

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


def calibrated(ds: DataSet, *, folds: int) -> tuple[ConversationCalibration, float]:
    """Calibration on the whole dev set (with the cross-validated estimate), and its time."""
    started = time.perf_counter()
    result = calibrate_conversations(
        ds.dev, ds.params, ds.route_names, ConversationParams(), off_topic=ds.off_val, folds=folds
    )
    return result, time.perf_counter() - started


def run(datasets: Path) -> dict[str, Any]:
    oos_val = [q.text for q in load_labelled(datasets / "clinc150" / "val.jsonl") if q.label == "oos"]
    oos_test = [q.text for q in load_labelled(datasets / "clinc150" / "test.jsonl") if q.label == "oos"]
    embedder = load_embedder()
    loaded: dict[str, DataSet] = {}
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
                loaded[name] = load_set(name, datasets / folder, oos_val, oos_test, embedder, index)
            finally:
                index.close()
                store.close()
    full = {name: calibrated(ds, folds=5) for name, ds in loaded.items()}
    out: dict[str, Any] = {"sets": {}}
    defaults = ConversationParams()
    for name, ds in loaded.items():
        other = next(n for n in loaded if n != name)
        result, seconds = full[name]
        mine, theirs = result.chosen.conversation, full[other][0].chosen.conversation
        tune = calibrate_conversations(
            ds.tune, ds.params, ds.route_names, defaults, off_topic=ds.off_val_tune, folds=0
        ).chosen.conversation
        cv = result.cross_validated
        assert cv is not None
        alone = result.last_message.scores
        out["sets"][name] = {
            "rows": {
                "last message alone": row(alone),
                "defaults": row(scores(ds.dev, ds.params, defaults)),
                "calibrated on itself, in-sample": row(result.chosen.scores),
                "calibrated on itself, 5-fold cross-validated": row(cv.scores),
                "calibrated on the other set (transfer)": row(scores(ds.dev, ds.params, theirs)),
            },
            "report_part": {
                "last message alone": row(scores(ds.report, ds.params, ConversationParams(strategy="last_message"))),
                "calibrated on the tune part": row(scores(ds.report, ds.params, tune)),
            },
            "off_topic": {
                "alone": sum(d.fallback for d in ds.off_test.own) / len(ds.off_test.own),
                "defaults": off_topic_share(ds, defaults),
                "calibrated on itself": off_topic_share(ds, mine),
                "calibrated on the other set": off_topic_share(ds, theirs),
            },
            "after_off_topic": {
                "defaults": after_off_topic(ds, defaults),
                "calibrated on itself": after_off_topic(ds, mine),
            },
            "other": other,
            "chosen": mine.to_dict(),
            "chosen_tune": tune.to_dict(),
            "cv_chosen": [c.tunable_values() for c in cv.chosen],
            "calibration_s": round(seconds, 1),
            "settings": result.settings,
            "threshold": ds.params.threshold,
            "parts": {"tune": len({g.conversation for g in ds.tune.labels}), "report": len(ds.report.labels)},
        }
    out["defaults"] = defaults.to_dict()
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
        + ". Calibration inserts CLINC150 val's out-of-scope queries as off-topic turns; the off-topic "
        "figures insert CLINC150 test's. Turn types: all / first of a domain / follow-ups / switches.",
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
    lines.append("")
    for n in names:
        s = out["sets"][n]
        chosen = ", ".join(f"{k}={v}" for k, v in s["chosen"].items() if k != "strategy")
        lines.append(
            f"{n}: calibrated in {s['calibration_s']} s over {s['settings']} settings (with the 5-fold estimate); "
            f"chosen {chosen}."
        )
        lines.append("")
    defaults = ", ".join(f"{k}={v}" for k, v in out["defaults"].items() if k != "strategy")
    lines += [f"Defaults: {defaults}.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.conversation_sets", description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--write", action="store_true", help="rewrite the conversation-sets section of BENCHMARKS.md")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    out = run(args.datasets)
    text = render(out)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    if args.write:
        write_named_section(Path("BENCHMARKS.md"), "conversation-sets", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
