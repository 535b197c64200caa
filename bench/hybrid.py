"""The hybrid mode: the band chosen for an escalation budget, its SIMULATED accuracy, and the
latency it adds, in one run.

    .venv/bin/python -m bench.hybrid [--datasets ../shared/datasets] [--budget 0.10] [--write]

Quality (simulations, no LLM is called): for CLINC150 (routes from train, the vote calibrated on
val as `python -m indexer calibrate` does) and for the shipped routes (calibrated on
evals/shipped-val.jsonl), `calibrate_band` (what `calibrate --band` runs) chooses the band on
the validation file for the budget; the table gives, on the test file, the share escalated,
the vote's accuracy on the escalated and the other queries, and the hybrid's in-scope accuracy
and fallback recall if the model were right whenever it can be (upper bound) and with
probability p = 0.9 and 0.8 (expected values; a model that can be right is one offered the
gold route, or any route for an out-of-scope query, since it may answer "none").

Latency: the shipped routes served in mode hybrid with a loopback OpenAI-compatible decision
model answering after a fixed delay, against the same routes in mode embedding, interleaved in
one process: classify p50 for queries the band leaves alone and for escalated ones (a new
question each time, so the answer cache is not used).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.data import load_splits
from bench.quality import gold_labels
from bench.report import write_named_section
from devkit.fake_llm import FakeLLM, Reply
from devkit.routes_dirs import FAKE_KEY, FAKE_KEY_ENV
from devkit.serving import SHIPPED_ROUTES, serve, settings_for
from indexer.calibration import DEFAULT_GRID, calibrate
from indexer.hybrid import BAND, BandSimulator, calibrate_band, vote_only
from indexer.importer import write_routes_from_jsonl
from indexer.labelled import LabelledQuery, canonical_labels, load_labelled
from router_core import Embedder, Router, RouteRequest, load_embedder, load_routes, pipeline, run_reindex
from router_core.params import LLMRoutingParams
from router_core.store import EdgeStore
from router_llm.settings import DeciderSettings
from service.app import create_app
from service.services import Services

ROOT = Path(__file__).resolve().parents[1]
DECIDER = "decision-model"


def quality(
    name: str,
    routes: Path,
    val: Sequence[LabelledQuery],
    test: Sequence[LabelledQuery],
    embedder: Embedder,
    budget: float,
    gold: Any,
) -> dict[str, Any]:
    """Calibrate the vote and the band on val; simulate on test."""
    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeStore(Path(tmp))
        run_reindex(load_routes(routes), store, embedder)
        index = store.open_version(store.live_version() or "")
        try:
            table = pipeline.vote_only(index.table)
            base = table.params
            names = [r.name for r in table.routes]
            k_max = max(DEFAULT_GRID.k_max, base.k)
            router = Router(index, embedder)
            val_r = router.routing([RouteRequest.query(q.text) for q in val], table=table, k=k_max)
            test_r = router.routing([RouteRequest.query(q.text) for q in test], table=table, k=k_max)
        finally:
            index.close()
            store.close()
    val_gold, test_gold = gold(val, names, base.default_route), gold(test, names, base.default_route)
    val_n = [val_r.found.neighbours[q.text] for q in val]
    params = calibrate(val_n, val_gold, base, routes=names).params
    calibrated = replace(table, params=params)
    val_d, test_d = val_r.again(calibrated), test_r.again(calibrated)
    band = calibrate_band(val_d, val_gold, params, LLMRoutingParams(), budget=budget)
    out: dict[str, Any] = {"name": name, "params": params.to_dict(), "calibration": band.to_dict()}
    sim = BandSimulator(test_d, test_gold, params, oos_share=band.oos_share)
    out["test_vote"] = asdict(vote_only(sim))
    if band.chosen is not None:
        chosen = band.chosen.llm
        out["test"] = {str(p): asdict(sim.scores(chosen, p)) for p in (0.9, 0.8)}
        out["test_file_oos_share"] = float(sim.oos.mean())
    return out


def latency(embedder: Embedder, delay_s: float, rounds: int) -> dict[str, Any]:
    """Classify p50 over HTTP: hybrid (loopback decision model answering after `delay_s`) and
    embedding mode, the same routes, interleaved."""
    queries = [q.text for q in load_labelled(ROOT / "evals" / "shipped-test.jsonl")]
    with tempfile.TemporaryDirectory() as tmp, FakeLLM() as fake:
        fake.always(DECIDER, Reply('{"route": "none"}', first_delay_s=delay_s))
        urls = {}
        services = []
        for mode in ("embedding", "hybrid"):
            routes = Path(tmp) / f"routes-{mode}"
            shutil.copytree(SHIPPED_ROUTES, routes)
            router_file = routes / "_router.yaml"
            data = yaml.safe_load(router_file.read_text(encoding="utf-8"))
            data["mode"] = mode
            router_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            store_dir = Path(tmp) / f"data-{mode}"
            run_reindex(load_routes(routes), EdgeStore(store_dir), embedder)
            decider = DeciderSettings(model=DECIDER, base_url=fake.url, api_key_env=FAKE_KEY_ENV, timeout_s=5)
            services.append(Services.build(settings_for(routes, store_dir, decider=decider), embedder=embedder))
        os.environ[FAKE_KEY_ENV] = FAKE_KEY  # the decision model's key, read when first used
        with serve(create_app(services=services[0])) as plain_url, serve(create_app(services=services[1])) as url:
            urls = {"embedding": plain_url, "hybrid": url}
            timings: dict[str, list[float]] = {"embedding": [], "hybrid_not_escalated": [], "hybrid_escalated": []}
            with httpx.Client(timeout=60) as client:
                for r in range(rounds):
                    for i, q in enumerate(queries):
                        text = f"{q} ({r}.{i})"  # new text: nothing cached
                        started = time.perf_counter()
                        client.post(f"{urls['embedding']}/v1/classify", json={"query": text}).raise_for_status()
                        timings["embedding"].append((time.perf_counter() - started) * 1e3)
                        started = time.perf_counter()
                        body = client.post(f"{urls['hybrid']}/v1/classify", json={"query": text}).json()
                        key = "hybrid_escalated" if "llm" in body else "hybrid_not_escalated"
                        timings[key].append((time.perf_counter() - started) * 1e3)
        p50 = {k: round(statistics.median(v), 2) for k, v in timings.items() if v}
        return {
            "delay_ms": delay_s * 1e3,
            "p50_ms": p50,
            "counts": {k: len(v) for k, v in timings.items()},
            "not_escalated_vs_embedding": round(p50["hybrid_not_escalated"] / p50["embedding"], 3),
        }


def run(datasets: Path, budget: float, quick: bool) -> dict[str, Any]:
    embedder = load_embedder()
    out: dict[str, Any] = {"budget": budget}
    evals = ROOT / "evals"
    shipped_val, shipped_test = load_labelled(evals / "shipped-val.jsonl"), load_labelled(evals / "shipped-test.jsonl")

    def canonical(queries: Sequence[LabelledQuery], names: Sequence[str], default: str) -> list[str]:
        return canonical_labels(queries, set(names), default)

    out["shipped"] = quality("shipped routes", SHIPPED_ROUTES, shipped_val, shipped_test, embedder, budget, canonical)
    if not quick:
        splits = load_splits(datasets)
        with tempfile.TemporaryDirectory() as tmp:
            routes = Path(tmp) / "routes"
            write_routes_from_jsonl(datasets / "clinc150" / "train.jsonl", routes)
            out["clinc150"] = quality(
                "CLINC150", routes, splits.val, splits.test, embedder, budget, lambda qs, _n, _d: gold_labels(qs)
            )
    out["latency"] = latency(embedder, delay_s=0.2, rounds=1 if quick else 3)
    return out


def render(out: dict[str, Any]) -> str:
    def pct(v: float) -> str:
        return f"{v * 100:.1f}%"

    lines = [
        "## Hybrid mode: band for a 10% escalation budget (SIMULATED accuracy)",
        "",
        "Command: `.venv/bin/python -m bench.hybrid --write`. The vote is calibrated on the validation file, then "
        "the band (`calibrate --band`) is chosen there for the budget, escalation counted at a 20% out-of-scope "
        "share of traffic. Every hybrid figure below is a simulation: no LLM was called. Upper bound: the model "
        "is right whenever the gold route is offered (or the query is out of scope, answerable with none); p: it "
        "is then right with probability p. Test-file figures.",
        "",
        "| data | router | escalated (at 20% oos) | escalated (file) | vote right: escalated / rest | "
        "in-scope accuracy | fallback recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in ("clinc150", "shipped"):
        if key not in out:
            continue
        data = out[key]
        vote = data["test_vote"]
        lines.append(
            f"| {data['name']} | vote alone | - | - | - | {pct(vote['in_scope_p'])} | {pct(vote['recall_p'])} |"
        )
        for p, s in data.get("test", {}).items():
            if p == "0.9":
                lines.append(
                    f"| {data['name']} | hybrid, upper bound | {pct(s['escalated'])} | {pct(s['escalated_raw'])} | "
                    f"{pct(s['vote_on_escalated'])} / {pct(s['vote_on_rest'])} | {pct(s['in_scope_upper'])} | "
                    f"{pct(s['recall_upper'])} |"
                )
            lines.append(
                f"| {data['name']} | hybrid, p = {p} | {pct(s['escalated'])} | {pct(s['escalated_raw'])} | "
                f"{pct(s['vote_on_escalated'])} / {pct(s['vote_on_rest'])} | {pct(s['in_scope_p'])} | "
                f"{pct(s['recall_p'])} |"
            )
        chosen = data["calibration"]["chosen"]
        if chosen:
            band = ", ".join(f"{k}={v}" for k, v in chosen["llm"].items() if k in BAND)
            lines.append("")
            lines.append(f"{data['name']}: chosen band {band} (val: {pct(chosen['escalated'])} escalated).")
        lines.append("")
    lat = out["latency"]
    p50 = lat["p50_ms"]
    lines += [
        f"Latency over HTTP (p50; decision model on loopback answering after {lat['delay_ms']:.0f} ms): embedding "
        f"mode {p50['embedding']} ms; hybrid, not escalated {p50.get('hybrid_not_escalated')} ms "
        f"({lat['not_escalated_vs_embedding']}x); hybrid, escalated {p50.get('hybrid_escalated')} ms "
        f"(counts: {lat['counts']}).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hybrid", description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--budget", type=float, default=0.10)
    parser.add_argument("--quick", action="store_true", help="shipped routes only")
    parser.add_argument("--write", action="store_true", help="rewrite the hybrid section of BENCHMARKS.md")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    out = run(args.datasets, args.budget, args.quick)
    text = render(out)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str) + "\n", encoding="utf-8")
    if args.write:
        write_named_section(Path("BENCHMARKS.md"), "hybrid", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
