"""`python -m bench`: the issue-5 benchmark in one command.

Builds a routes directory from CLINC150 train (oos excluded), indexes it, scores this router
(defaults and calibrated on val) and semantic-router 1.1 (defaults and after its own fit on val)
on test, measures speed (index build against bare encode throughput, single-query latency in
process and over HTTP against one bare encode, HTTP throughput at 1/8/32 clients, incremental
re-index), prints a table, writes JSON and rewrites the generated part of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.data import Splits, load_splits, subset, write_jsonl
from bench.encode_batching import encode_by_batch_size
from bench.finetuned import finetuned_quality
from bench.latency import interleaved_latency
from bench.machine import load_average, machine_facts
from bench.peer import peer_quality, run_peer
from bench.peer_env import ensure_peer_env
from bench.quality import our_quality
from bench.reindex_speed import reindex_cli, reindex_in_process
from bench.report import render, write_section
from bench.targets import check_targets
from bench.throughput import http_throughput
from devkit.serving import serve
from indexer.importer import write_routes_from_jsonl
from router_core import Embedder, IndexStore, RouteTable, load_embedder, load_routes, run_reindex
from router_core.manifest import example_points
from router_core.store import EdgeStore
from service.app import create_app
from service.services import Services
from service.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASETS = REPO.parent / "shared" / "datasets"
RESULTS = REPO / "bench" / "results"
QUICK_LABELS = 20
WARMUP_TEXTS = 128

Log = Callable[[str], None]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets",
        type=Path,
        default=DEFAULT_DATASETS,
        help="folder holding clinc150/{train,val,test}.jsonl (default: ../shared/datasets)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a fast smoke run: {QUICK_LABELS} intents, short load windows, fewer latency samples",
    )
    parser.add_argument("--skip-peer", action="store_true", help="leave semantic-router out")
    parser.add_argument(
        "--skip-finetune",
        action="store_true",
        help="leave out the fine-tuned model (one epoch on train; ~10 min on 2 cores)",
    )
    parser.add_argument("--out", type=Path, help="result JSON (default: bench/results/<timestamp>.json)")
    parser.add_argument(
        "--markdown",
        type=Path,
        default=REPO / "BENCHMARKS.md",
        help="file whose generated section is rewritten (default: BENCHMARKS.md)",
    )
    parser.add_argument(
        "--write-markdown",
        choices=("auto", "yes", "no"),
        default="auto",
        help="rewrite the Markdown section: auto = only for full runs (default)",
    )
    parser.add_argument("--duration", type=float, help="seconds per throughput level (10; quick 3)")
    parser.add_argument("--latency-queries", type=int, help="single-query samples (200; quick 50)")
    parser.add_argument(
        "--peer-timeout",
        type=float,
        default=1200.0,
        help="seconds before the semantic-router run is abandoned (1200)",
    )
    return parser


class Phases:
    """Wall time of each stage, recorded in the result (the run must fit its time budget)."""

    def __init__(self, log: Log) -> None:
        self.seconds: dict[str, float] = {}
        self._log = log
        self._name: str | None = None
        self._t0 = 0.0

    def start(self, name: str) -> None:
        """End the current stage and start timing `name`."""
        self.stop()
        self._name, self._t0 = name, time.perf_counter()
        self._log(f"-- {name}")

    def stop(self) -> None:
        """End the current stage."""
        if self._name is not None:
            self.seconds[self._name] = round(time.perf_counter() - self._t0, 1)
            self._name = None


@dataclass(frozen=True)
class Workspace:
    """The temporary files of one run: splits as JSON Lines, routes, index."""

    root: Path
    splits: Splits
    paths: dict[str, Path]
    routes_dir: Path
    data_dir: Path


def _logger(started: float) -> Log:
    def log(message: str) -> None:
        elapsed = time.perf_counter() - started
        print(f"[bench {elapsed:7.1f} s] {message}", file=sys.stderr, flush=True)

    return log


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    given = list(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    log = _logger(started)
    with tempfile.TemporaryDirectory(prefix="router-bench-") as tmp:
        result = run(args, Path(tmp), given, started, log)
    stamp = result["started_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    out = args.out or RESULTS / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    section = render(result)
    print(section)
    if args.write_markdown == "yes" or (args.write_markdown == "auto" and not args.quick):
        write_section(args.markdown, section)
        log(f"rewrote the generated section of {args.markdown}")
    log(f"wrote {out}")
    return 0


def run(args: argparse.Namespace, work: Path, given: list[str], started: float, log: Log) -> dict[str, Any]:
    """Every measurement, in an order that keeps them from disturbing each other."""
    phases = Phases(log)
    result: dict[str, Any] = {
        "command": " ".join(["python -m bench", *given]),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "load_average": {"start": load_average()},
        "phases_s": phases.seconds,
        "notes": [],
    }
    duration = args.duration or (3.0 if args.quick else 10.0)
    n_latency = args.latency_queries or (50 if args.quick else 200)

    peer_ready = False
    if args.skip_peer:
        result["peer"] = {"skipped": "--skip-peer"}
    else:
        phases.start("peer environment")  # pip, when needed, before any timing
        try:
            ensure_peer_env(log=log)
            peer_ready = True
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            result["peer"] = {"error": f"peer environment: {exc}"}

    phases.start("data and routes")
    ws = prepare(args.datasets, args.quick, work, log)
    result["data"] = {"datasets": str(args.datasets), "sizes": ws.splits.sizes()}

    phases.start("model load")
    embedder, result["model"] = load_model(log)
    result["machine"] = machine_facts(REPO)

    phases.start("bare encode and index build")
    table = load_routes(ws.routes_dir)
    store = EdgeStore(ws.data_dir)
    speed: dict[str, Any] = {"index_build": index_build(embedder, table, store, log)}
    result["speed"] = speed

    phases.start("quality: this router")
    result["quality"] = our_quality(embedder, store, ws.splits.val, ws.splits.test, log=log)

    if not args.skip_finetune:
        phases.start("quality: fine-tuned model")
        tuned = finetuned_quality(table, work, ws.splits.val, ws.splits.test, quick=args.quick, log=log)
        result["quality"]["ours_finetuned_default"] = tuned.pop("default")
        result["quality"]["ours_finetuned_calibrated"] = tuned.pop("calibrated")
        result["finetune"] = tuned

    phases.start("bare encode by batch size")
    speed["encode_batching"] = encode_by_batch_size(embedder, [q.text for q in ws.splits.test], budget_s=duration)
    log(f"bare encode by batch size: {speed['encode_batching']['levels']}")

    phases.start("service: latency and throughput")
    rng = random.Random(5)
    test_texts = [q.text for q in ws.splits.test]
    latency_queries = rng.sample(test_texts, min(n_latency, len(test_texts)))
    load_queries = rng.sample(test_texts, len(test_texts))
    speed.update(
        serve_and_measure(
            embedder,
            ws.routes_dir,
            ws.data_dir,
            latency_queries=latency_queries,
            load_queries=load_queries,
            duration=duration,
            work=work,
            log=log,
        )
    )

    phases.start("incremental re-index")
    speed["reindex"] = {
        "in_process": reindex_in_process(ws.routes_dir, store, embedder, "bench edit 1"),
        "cli": reindex_cli(ws.routes_dir, ws.data_dir, "bench edit 2"),
        "model_load_s": result["model"]["load_s"],
    }
    log(f"re-index after one route change: {speed['reindex']}")

    if peer_ready:
        phases.start("semantic-router")
        result["peer"] = measure_peer(
            ws, table, result["quality"], n_latency=n_latency, timeout=args.peer_timeout, log=log
        )
    phases.stop()

    return finish(result, quick=args.quick, started=started)


def finish(result: dict[str, Any], *, quick: bool, started: float) -> dict[str, Any]:
    """Targets, closing facts and notes on how far the timings can be trusted."""
    result["targets"] = check_targets(result)
    result["load_average"]["end"] = load_average()
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["duration_s"] = round(time.perf_counter() - started, 1)
    if quick:
        result["notes"].append("Quick run: a subset of intents and short windows; targets are indicative only.")
    # The end figure includes the bench's own load, so only the start tells of other work.
    before = result["load_average"]["start"][0]
    cores = result["machine"]["usable_cores"]
    if before > 0.5 * cores:
        result["notes"].append(
            f"The machine was busy with other work when the run started (1-minute load average "
            f"{before} on {cores} cores): timing figures are noisy; ratios measured interleaved "
            "hold best."
        )
    return result


def load_model(log: Log) -> tuple[Embedder, dict[str, Any]]:
    """The default model, and how long loading it took in this process."""
    t0 = time.perf_counter()
    embedder = load_embedder()
    facts = {"id": embedder.model_id, "load_s": round(time.perf_counter() - t0, 3)}
    log(f"model {embedder.model_id} loaded in {facts['load_s']:.2f} s")
    return embedder, facts


def prepare(datasets: Path, quick: bool, work: Path, log: Log) -> Workspace:
    """Read the splits (a subset for --quick), write them as JSON Lines and import train."""
    splits = load_splits(datasets)
    if quick:
        splits = subset(splits, QUICK_LABELS)
    paths = {
        name: write_jsonl(items, work / f"{name}.jsonl")
        for name, items in (("train", splits.train), ("val", splits.val), ("test", splits.test))
    }
    routes_dir = work / "routes"
    n_routes = write_routes_from_jsonl(paths["train"], routes_dir)
    log(f"wrote {n_routes} routes from {len(splits.train)} train queries to {routes_dir}")
    return Workspace(work, splits, paths, routes_dir, work / "index")


def index_build(embedder: Embedder, table: RouteTable, store: IndexStore, log: Log) -> dict[str, Any]:
    """A full index build of every example, against bare encode throughput of the same texts.

    The bare encode runs before and after the build and the faster run is the reference, so
    a burst of load from elsewhere cannot flatter the build.
    """
    texts = [p.text for p in example_points(table)]
    embedder.encode(texts[:WARMUP_TEXTS])

    def bare_encode() -> float:
        t0 = time.perf_counter()
        embedder.encode(texts)
        return time.perf_counter() - t0

    before = bare_encode()
    log(f"bare encode of {len(texts)} examples: {before:.1f} s")
    t0 = time.perf_counter()
    report = run_reindex(table, store, embedder)
    build = time.perf_counter() - t0
    log(f"index build of {report.examples} examples: {build:.1f} s")
    after = bare_encode()
    log(f"bare encode again: {after:.1f} s")
    bare = min(before, after)
    return {
        "examples": len(texts),
        "routes": len(table.routes),
        "bare_encode_runs_s": [round(before, 3), round(after, 3)],
        "bare_encode_s": round(bare, 3),
        "bare_encode_per_s": round(len(texts) / bare, 1),
        "build_s": round(build, 3),
        "examples_per_s": round(report.examples / build, 1),
        "vs_bare_encode": round((report.examples / build) / (len(texts) / bare), 3),
        "embedded": report.embedded,
    }


def serve_and_measure(
    embedder: Embedder,
    routes_dir: Path,
    data_dir: Path,
    *,
    latency_queries: list[str],
    load_queries: list[str],
    duration: float,
    work: Path,
    log: Log,
) -> dict[str, Any]:
    """Start the real service on the index; measure latency and throughput against it."""
    base = ServiceSettings(_env_file=None)  # type: ignore[call-arg]
    settings = base.model_copy(
        update={
            "routes_dir": routes_dir,
            "index": base.index.model_copy(update={"data_dir": data_dir}),
        }
    )
    runtime = Services.build(settings, embedder=embedder, store=EdgeStore(data_dir))
    out: dict[str, Any] = {}
    app = create_app(services=runtime)
    with serve(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        log(f"service up at {url}; measuring {len(latency_queries)} single queries")
        out["latency"] = interleaved_latency(runtime, client, latency_queries)
        log(f"latency p50 ms: { {k: v.get('p50_ms') for k, v in out['latency'].items()} }")
        out["throughput"] = http_throughput(url, load_queries, duration=duration, work=work)
        log(f"throughput: {[lv['requests_per_s'] for lv in out['throughput']['levels']]} req/s")
    return out


def measure_peer(
    ws: Workspace,
    table: RouteTable,
    quality: dict[str, Any],
    *,
    n_latency: int,
    timeout: float,
    log: Log,
) -> dict[str, Any]:
    """Run semantic-router in its venv; add its scores to `quality`, return its other figures."""
    folder = ws.root / "peer"
    folder.mkdir(exist_ok=True)
    log("running semantic-router in its own environment")
    try:
        raw = run_peer(
            ws.paths["train"],
            ws.paths["val"],
            ws.paths["test"],
            folder,
            latency_queries=n_latency,
            timeout=timeout,
            log=log,
        )
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
        log(f"semantic-router failed: {exc}")
        return {"error": str(exc)[-2000:]}
    quality.update(
        peer_quality(
            raw,
            ws.splits.val,
            ws.splits.test,
            table.params.default_route,
            [r.name for r in table.routes],
        )
    )
    log(f"semantic-router done in {raw['wall_s']:.0f} s")
    return {k: v for k, v in raw.items() if k not in ("val", "test")}
