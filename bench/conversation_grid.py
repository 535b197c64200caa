"""Conversation calibration's declared grid against a finer one: does the small grid find the same optimum?

    .venv/bin/python -m bench.conversation_grid [--datasets ../shared/datasets] [--write] [--json PATH]

On each multi-turn set (SGD, MultiWOZ: routes imported from `routes_train.jsonl`, the 400 dev
conversations, CLINC150 val's out-of-scope queries inserted as off-topic turns, as in
bench/conversation_sets.py), `calibrate_conversations` (what `python -m indexer calibrate`
runs) searches (1) the grid declared with the parameters (router_core/params.py) and (2) FINE,
a superset of it, denser around and beyond it, each with its 5-fold cross-validated estimate.
The fine grid holds windows 4 and 6, so its search reads conversations prepared for window
6: a smaller window's oldest contexts then mix messages just outside it (calibration
approximates them so, see indexer/conversation_commands.py). The chosen and the best settings
are therefore also scored through the service's own path (`Prepared.decide`) on conversations
prepared for their own window, and compared turn by turn with the one-standard-error measure
the search itself uses.

Unless `--no-timings`: `python -m indexer eval` on each set's dev conversations, a process of
its own as a user runs it (under /usr/bin/time), against an index of the set's routes built by
`python -m indexer import` and `reindex`; the distinct texts it embeds are read from its
progress lines.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.conversation_sets import SETS, indexed_sets, off_topic_queries, routed, scores
from bench.report import write_named_section
from indexer.conversation_calibration import calibrate_conversations
from indexer.conversations import LabelledConversation, LabelledTurn, Prepared, load_conversations, prepare
from indexer.defaults import DEFAULT_MIN_OFF_TOPIC
from indexer.labelled import is_fallback_label
from indexer.off_topic_insertion import insert_off_topic
from router_core import Embedder, OpenIndex, load_embedder
from router_core.params import ConversationParams, DecisionParams, specs_of

FINE: dict[str, tuple[Any, ...]] = {
    "window": (4, 6),
    "switch": (0.005, 0.01, 0.03, 0.1, 0.3, 0.5),
    "floor_below": (0.05, 0.1, 0.2),
    "assistant_weight": (0.5, 1.0),
    "context_weight": (0.0, 0.125, 0.25, 0.5, 1.0),
    "unrelated_switch": (0.0, 0.3, 0.6, 0.9),
    "standalone_similarity": (0.15, 0.2, 0.25, 0.3, 0.35),
    "standalone_words": (1, 2, 3, 4),
    "standalone_margin": (0.0, 0.05, 0.1, 0.15, 0.2),
}
"""Every tunable over more values than declared, around and beyond them, and a superset of the
declared grid: 144,000 settings (2-3 times as many values each would make millions, more than a
few minutes and gigabytes of the search's settings x turns matrices). Before `unrelated_switch`
it held windows 4, 6 and 10 and assistant_weight 0.25 too (81,000 settings; BENCHMARKS.md keeps
that run's figures below the section)."""

TEXTS_1000 = 23_400  # texts of issue 24's 1,000 dialogues
TYPES = ("all", "first of domain", "follow-up", "switch")


def declared() -> dict[str, tuple[Any, ...]]:
    """The grid declared with the parameters (one value: not searched, the default kept), but
    `follow_up_similarity`: this bench measures the rule without learnt follow-ups."""
    defaults = ConversationParams()
    return {
        s.name: s.grid if len(s.grid) > 1 else (getattr(defaults, s.name),)
        for s in specs_of(ConversationParams)
        if s.name != "follow_up_similarity"
    }


def changed(conv: ConversationParams) -> str:
    """The values that differ from the defaults."""
    defaults = ConversationParams().tunable_values()
    diff = [f"{k}={v}" for k, v in conv.tunable_values().items() if defaults[k] != v]
    return ", ".join(diff) or "the defaults"


def paired_se(a: Sequence[bool], b: Sequence[bool], labels: Sequence[LabelledTurn]) -> float:
    """The standard error of the difference in the objective (the mean of the four turn-type
    accuracies) between two settings' right/wrong turns: the search's one-standard-error measure."""
    groups = [
        [True] * len(labels),
        [g.first_of_domain for g in labels],
        [not g.first_of_domain for g in labels],
        [g.switch for g in labels],
    ]
    weight = [0.0] * len(labels)
    for group in groups:
        n = sum(group)
        for i, member in enumerate(group):
            weight[i] += member / (4 * n) if n else 0.0
    return math.sqrt(sum(w * w for w, x, y in zip(weight, a, b, strict=True) if x != y))


def right(p: Prepared, params: DecisionParams, conv: ConversationParams) -> list[bool]:
    """Each labelled turn right or wrong, through the service's path."""
    default = params.default_route
    return [
        r == (default if is_fallback_label(g.route, default) else g.route)
        for r, g in zip(routed(p, params, conv), p.labels, strict=True)
    ]


class Preparations:
    """One set's dev conversations and their off-topic insertions, prepared per window on demand,
    each distinct text embedded once whatever the window."""

    def __init__(
        self,
        conversations: Sequence[LabelledConversation],
        inserted: Sequence[LabelledConversation],
        embedder: Embedder,
        index: OpenIndex,
    ) -> None:
        self.files, self.embedder, self.index = (conversations, inserted), embedder, index
        self.known: dict[str, Any] = {}
        self.prepared: dict[int, tuple[Prepared, Prepared]] = {}
        self.seconds: dict[int, float] = {}

    def __call__(self, window: int) -> tuple[Prepared, Prepared]:
        if window not in self.prepared:
            started = time.perf_counter()
            dev, off = (
                prepare(
                    c,
                    self.embedder,
                    self.index,
                    self.index.table.params,
                    max_window=window,
                    with_context=True,
                    known=self.known,
                )
                for c in self.files
            )
            self.prepared[window] = (dev, off)
            self.seconds[window] = round(time.perf_counter() - started, 1)
        return self.prepared[window]


def compare_grids(
    conversations: Sequence[LabelledConversation],
    off_topic: Sequence[str],
    embedder: Embedder,
    index: OpenIndex,
    *,
    fine: Mapping[str, tuple[Any, ...]] = FINE,
) -> dict[str, Any]:
    """The declared grid and `fine` searched on one set's conversations (`off_topic` queries
    inserted as off-topic turns), each choice scored through the service's path, and the fine
    grid's choice and best setting against the declared grid's choice, turn by turn."""
    at = Preparations(conversations, insert_off_topic(conversations, off_topic), embedder, index)
    params, route_names = index.table.params, tuple(r.name for r in index.table.routes)
    defaults = ConversationParams()
    out: dict[str, Any] = {}
    for grid, values in (("declared", declared()), ("fine", dict(fine))):
        dev, off = at(max(values["window"]))
        started = time.perf_counter()
        # the rule without learnt follow-ups, as this section measured it (bench.conversation_sets has them)
        result = calibrate_conversations(
            dev,
            params,
            route_names,
            defaults,
            off_topic=off,
            values=values,
            folds=5,
            min_off_topic=DEFAULT_MIN_OFF_TOPIC,
            learn_follow_ups=False,
        )
        seconds = time.perf_counter() - started
        cv = result.cross_validated
        assert cv is not None
        chosen, best = result.chosen.conversation, result.top[0].conversation
        exact = scores(at(chosen.window)[0], params, chosen)
        out[grid] = {
            "grid": values,
            "window": max(values["window"]),
            "settings": result.settings,
            "seconds": round(seconds, 1),
            "load_after": os.getloadavg()[0],
            "chosen": chosen.tunable_values(),
            "search": {**result.chosen.scores.as_row(), "objective": result.chosen.scores.macro},
            "exact": {**exact.as_row(), "objective": exact.macro},
            "off_topic": result.chosen.off_topic,
            "best": best.tunable_values(),
            "best_exact_objective": scores(at(best.window)[0], params, best).macro,
            "cv": {**cv.scores.as_row(), "objective": cv.scores.macro},
            "cv_off_topic": cv.off_topic,
            "cv_chosen": [c.tunable_values() for c in cv.chosen],
            "prepare_s": at.seconds[max(values["window"])],
        }
    base = ConversationParams(**out["declared"]["chosen"])
    base_right = right(at(base.window)[0], params, base)
    for key, objective in (
        ("chosen", out["fine"]["exact"]["objective"]),
        ("best", out["fine"]["best_exact_objective"]),
    ):
        other = ConversationParams(**out["fine"][key])
        p = at(other.window)[0]
        out[f"fine_{key}_vs_declared"] = {
            "gain": objective - out["declared"]["exact"]["objective"],
            "se": paired_se(right(p, params, other), base_right, p.labels),
        }
    out["texts"] = len(at(base.window)[0].neighbours)
    return out


def run_grids(datasets: Path) -> dict[str, Any]:
    """Both grids on both sets."""
    embedder = load_embedder()
    oos_val = off_topic_queries(datasets, "val")
    return {
        name: compare_grids(load_conversations(folder / "dev_conversations.jsonl"), oos_val, embedder, index)
        for name, folder, index in indexed_sets(datasets, embedder)
    }


def eval_timings(datasets: Path) -> dict[str, Any]:
    """`python -m indexer eval` on each set's dev conversations, timed by /usr/bin/time."""
    out: dict[str, Any] = {}
    for name, folder in SETS.items():
        with tempfile.TemporaryDirectory() as tmp:
            routes, data, timing = Path(tmp) / "routes", Path(tmp) / "data", Path(tmp) / "time"
            where = ["--routes", str(routes), "--data-dir", str(data)]
            _indexer(["import", str(datasets / folder / "routes_train.jsonl"), "--out", str(routes), "--quiet"])
            _indexer(["reindex", *where, "--quiet"])
            load_before = os.getloadavg()[0]
            conversations = datasets / folder / "dev_conversations.jsonl"
            err = _indexer(["eval", str(conversations), *where], time_to=timing)
            seconds, max_kb = timing.read_text(encoding="utf-8").split()[-2:]
            texts, embed_s = embedded(err)
            out[name] = {
                "dialogues": sum(1 for line in conversations.open(encoding="utf-8") if line.strip()),
                "seconds": float(seconds),
                "max_rss_mb": round(int(max_kb) / 1024),
                "texts": texts,
                "embed_s": embed_s,
                "load_before": load_before,
                "load_after": os.getloadavg()[0],
            }
    return out


def embedded(progress: str) -> tuple[int, float]:
    """The distinct texts an indexer command embedded and the seconds it took, from its last
    progress line (0 and NaN without one)."""
    pattern = r"embedding and searching (\d+) texts of the conversations\s+(\d+)/\d+ .*?([\d.]+) s\s*$"
    lines = re.findall(pattern, progress, re.M)
    return (int(lines[-1][0]), float(lines[-1][2])) if lines else (0, math.nan)


def _indexer(args: list[str], *, time_to: Path | None = None) -> str:
    """Run `python -m indexer ARGS` (under /usr/bin/time writing to `time_to`); its stderr."""
    timer = ["/usr/bin/time", "-f", "%e %M", "-o", str(time_to)] if time_to else []
    done = subprocess.run([*timer, sys.executable, "-m", "indexer", *args], check=True, capture_output=True, text=True)
    return done.stderr


def in_grid(values: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> bool:
    """Whether a setting is one of a grid's."""
    return all(v in grid[k] for k, v in values.items())


def reading(grids: Mapping[str, Any]) -> str:
    """What the figures say, set by set, and whether the declared grid loses anything."""

    def noise(gain: float, se: float) -> str:
        if abs(gain) <= se:
            return "within one standard error"
        return "within two standard errors" if abs(gain) <= 2 * se else "beyond two standard errors"

    said, clearly_better, sizes = [], [], ""
    for name, s in grids.items():
        d, f = s["declared"], s["fine"]
        c, b = s["fine_chosen_vs_declared"], s["fine_best_vs_declared"]
        sizes = f"from {f['settings']:,} to {d['settings']:,} settings"
        cv_gain = f["cv"]["objective"] - d["cv"]["objective"]
        if f["chosen"] == d["chosen"]:
            text = f"On {name} the fine grid chose the declared grid's setting"
        else:
            text = (
                f"On {name} the fine grid chose {changed(ConversationParams(**f['chosen']))}"
                + (" (a setting of the declared grid too)" if in_grid(f["chosen"], d["grid"]) else "")
                + f", {c['gain'] * 100:+.2f} +/- {c['se'] * 100:.2f} points in-sample ({noise(c['gain'], c['se'])})"
            )
        if f["best"] == d["chosen"]:
            text += "; its best in-sample setting is the declared grid's choice"
        else:
            text += (
                f"; its best in-sample setting gains {b['gain'] * 100:+.2f} +/- {b['se'] * 100:.2f} points "
                f"({noise(b['gain'], b['se'])})"
            )
        distinct = [len({json.dumps(x, sort_keys=True) for x in g["cv_chosen"]}) for g in (d, f)]
        text += (
            f". Cross-validated, the fine grid's search scores {cv_gain * 100:+.2f} points on the objective "
            f"({(f['cv']['all'] - d['cv']['all']) * 100:+.1f} on all turns, "
            f"{(f['cv']['switch'] - d['cv']['switch']) * 100:+.1f} on switches), its 5 folds choosing {distinct[1]} "
            f"different settings (the declared grid's: {distinct[0]}); it took {f['seconds']} s against "
            f"{d['seconds']} s."
        )
        if abs(f["search"]["all"] - f["exact"]["all"]) >= 0.0005:
            text += (
                f" Its search, on conversations prepared for window {f['window']}, scored its choice "
                f"{f['search']['all'] * 100:.2f}% on all turns, {f['exact']['all'] * 100:.2f}% exactly (a smaller "
                "window's contexts approximated)."
            )
        said.append(text)
        if cv_gain > 0 and b["gain"] > 2 * b["se"]:
            clearly_better.append(f"{name} ({changed(ConversationParams(**f['best']))})")
    if not clearly_better:
        verdict = (
            "Reading: on both sets the declared grid finds the fine grid's optimum or one within its noise, "
            "and the fine grid's extra settings do not raise the cross-validated figures beyond it: the cut "
            f"{sizes} loses nothing measurable here."
        )
    else:
        verdict = (
            "Reading: the fine grid finds something better, beyond two standard errors in-sample and higher "
            f"cross-validated, on {' and '.join(clearly_better)}; the defaults and the declared grid are left as "
            "they are here."
        )
    return " ".join([verdict, *said])


def render(out: dict[str, Any]) -> str:
    """The BENCHMARKS.md section, its reading generated from the figures."""
    grids = out["grids"]
    first = next(iter(grids.values()))

    def pct(v: float) -> str:
        return f"{v * 100:.1f}%"

    def gain(g: Mapping[str, float]) -> str:
        if not g["se"]:
            return "the same decisions"
        return f"{g['gain'] * 100:+.2f} +/- {g['se'] * 100:.2f} points"

    def describe(grid: Mapping[str, tuple[Any, ...]]) -> str:
        return "; ".join(f"{k} {', '.join(str(v) for v in values)}" for k, values in grid.items() if len(values) > 1)

    lines = [
        "## Conversation calibration: the declared grid against a finer one",
        "",
        f"Command: `{out['command']}` (load average {out['load_before']:.1f} before, "
        f"{out['load_after']:.1f} after, on this 2-core machine). Per set (400 dev conversations, CLINC150 val's "
        "out-of-scope queries inserted as off-topic turns) `calibrate_conversations`, what "
        "`python -m indexer calibrate` runs, searches the grid declared in `router_core/params.py` "
        f"({first['declared']['settings']:,} settings: {describe(first['declared']['grid'])}) and a finer superset "
        f"of it ({first['fine']['settings']:,} settings: {describe(first['fine']['grid'])}). Seconds: the search "
        "with its 5-fold estimate, "
        "the texts already embedded"
        + (f"; the process peaked at {out['max_rss_mb']:,} MB" if "max_rss_mb" in out else "")
        + ". In-sample figures of the chosen setting through the service's own path "
        "(conversations prepared for its window); objective: the mean of the four turn-type accuracies.",
        "",
        "| set | grid | settings | seconds | chosen (against the defaults) | objective | all | first | follow-up "
        "| switch | off-topic | 5-fold all | 5-fold first | 5-fold follow-up | 5-fold switch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, sets in grids.items():
        for grid in ("declared", "fine"):
            g = sets[grid]
            lines.append(
                f"| {name} | {grid} | {g['settings']:,} | {g['seconds']} | "
                f"{changed(ConversationParams(**g['chosen']))} | {pct(g['exact']['objective'])} | "
                + " | ".join(pct(g["exact"][t]) for t in TYPES)
                + f" | {pct(g['off_topic'])} | "
                + " | ".join(pct(g["cv"][t]) for t in TYPES)
                + " |"
            )
    lines += [
        "",
        "Against the declared grid's choice, turn by turn (gain in the objective +/- the paired standard error "
        "the search's one-standard-error rule uses):",
        "",
        "| set | the fine grid's choice | the fine grid's best in-sample setting | that setting |",
        "|---|---|---|---|",
    ]
    for name, sets in grids.items():
        c, b = sets["fine_chosen_vs_declared"], sets["fine_best_vs_declared"]
        lines.append(f"| {name} | {gain(c)} | {gain(b)} | {changed(ConversationParams(**sets['fine']['best']))} |")
    lines += ["", reading(grids), ""]
    for name, sets in grids.items():
        folds = [changed(ConversationParams(**c)) for c in sets["fine"]["cv_chosen"]]
        d, f = sets["declared"], sets["fine"]
        lines.append(
            f"{name}: the fine grid's folds chose {'; '.join(folds)}. Preparing the conversations took "
            f"{d['prepare_s']} s for window {d['window']} (embedding {sets['texts']} distinct texts) and "
            f"{f['prepare_s']} s more for window {f['window']} (the same texts; only the contexts' mixes are new)."
        )
        lines.append("")
    t = out.get("eval")
    if t:
        cells = []
        for name, e in t.items():
            rate = e["texts"] / e["seconds"]
            cells.append(
                f"{name} {e['dialogues']} dialogues: {e['seconds']:.1f} s for {e['texts']} distinct texts "
                f"({rate:.0f} texts/s over the whole run, {e['texts'] / e['embed_s']:.0f}/s while embedding; load "
                f"average {e['load_before']:.1f} before, {e['load_after']:.1f} after; extrapolated to "
                f"{TEXTS_1000:,} texts at the whole run's rate: {TEXTS_1000 / rate:.0f} s)"
            )
        lines += [
            "Speed of `python -m indexer eval dev_conversations.jsonl --routes R --data-dir D`, each a process of "
            "its own as a user runs it (`/usr/bin/time`, imports and model load included; R from "
            "`python -m indexer import routes_train.jsonl`, D from `python -m indexer reindex`): "
            + "; ".join(cells)
            + ". Only 400 dialogues per set exist: the 1,000-dialogue figure (target <= 60 s idle) is an "
            "extrapolation, not a measurement.",
            "",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.conversation_grid", description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--write", action="store_true", help="rewrite the conversation-grid section of BENCHMARKS.md")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--no-timings", action="store_true", help="skip timing `python -m indexer eval`")
    args = parser.parse_args(argv)
    given = [a for a in (sys.argv[1:] if argv is None else argv) if a not in (str(args.json), "--json")]
    command = " ".join([".venv/bin/python -m bench.conversation_grid", *given])
    out: dict[str, Any] = {"command": command, "load_before": os.getloadavg()[0]}
    out["grids"] = run_grids(args.datasets)
    out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if not args.no_timings:
        out["eval"] = eval_timings(args.datasets)
    out["load_after"] = os.getloadavg()[0]
    text = render(out)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    if args.write:
        write_named_section(Path("BENCHMARKS.md"), "conversation-grid", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
