"""`python -m bench`: the benchmark of issues 5 and 15 in one command.

Builds a routes directory from CLINC150 train (oos excluded) and measures, side by side in one
run, three embedding setups: today's path (MiniLM on torch, 2 threads), the default (MiniLM on
ONNX Runtime) and the quality model (all-mpnet-base-v2 on ONNX Runtime, when installed). For
each: model load, index build, quality on test (routes' defaults and calibrated on val, and
fine-tuned), bare encode of one query idle and beside a CPU-heavy neighbour process, classify
over HTTP idle and beside the neighbour, HTTP throughput at 1/8/32 clients. Also: whether the
default routes CLINC150 exactly as torch did, decision by decision; semantic-router 1.1 on the
same splits; incremental re-index. Prints a table, writes JSON and rewrites the generated part
of BENCHMARKS.md.

Every timing of a setup runs in a process holding that setup's model only (`bench.worker`),
and the service runs as `python -m service`: one inference runtime per process. Quality is
measured here, with every model loaded (it times nothing).
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
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.contention import Timed, idle_and_loaded
from bench.data import Splits, load_splits, subset, write_jsonl
from bench.decisions import compare, routed
from bench.finetuned import finetuned_quality
from bench.latency import ClassifyClient, interleaved_latency, probes_for
from bench.machine import load_average, machine_facts
from bench.peer import peer_quality, run_peer
from bench.peer_env import ensure_peer_env
from bench.quality import our_quality
from bench.reindex_speed import reindex_cli
from bench.report import render, write_section
from bench.setups import DEFAULT, INT8, QUALITY, TODAY, Setup, fresh_process_load, load_setup
from bench.targets import check_backend_targets, check_targets
from bench.throughput import http_throughput
from bench.worker import Worker
from devkit.service_process import service_process
from indexer.importer import write_routes_from_jsonl
from router_core import Embedder, IndexStore, ModelUnavailable, RouteTable, load_routes
from router_core.embedding import ensure_quality_model
from router_core.params import DecisionParams
from router_core.store import EdgeStore

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASETS = REPO.parent / "shared" / "datasets"
RESULTS = REPO / "bench" / "results"
QUICK_LABELS = 20
CONTENTION_QUERIES = 100

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
        help="leave out the fine-tuned models (one epoch on train: ~6 min for MiniLM, much longer for mpnet)",
    )
    parser.add_argument(
        "--skip-mpnet",
        action="store_true",
        help="leave out the quality model all-mpnet-base-v2 (measured when installed: bin/setup --mpnet)",
    )
    parser.add_argument("--skip-mpnet-finetune", action="store_true", help="measure mpnet, but do not fine-tune it")
    parser.add_argument(
        "--skip-int8", action="store_true", help="leave out MiniLM with int8 weights (the opt-in approximate backend)"
    )
    parser.add_argument(
        "--candidates",
        action="store_true",
        help="only the embedding models side by side (MiniLM, mpnet and the multilingual models when "
        "installed): quality, multilingual eval, speed, memory (bench.candidates)",
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
    if args.candidates:
        from bench.candidates import run_candidates_command  # its own measurements and section

        return run_candidates_command(args, given, log, RESULTS)
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


@dataclass
class Loaded:
    """The setups of a run with their loaded models and index stores."""

    setups: list[Setup]
    embedders: dict[str, Embedder]
    stores: dict[str, IndexStore]
    cache: Path  # converted models, where the indexer command finds them too

    @property
    def default(self) -> Embedder:
        """The default setup's model."""
        return self.embedders[DEFAULT.key]


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
    setups = choose_setups(args, result, log)

    phases.start("model load")
    loaded = load_models(setups, ws, result, log)
    result["machine"] = machine_facts(REPO)

    phases.start("bare encode and index build")
    table = load_routes(ws.routes_dir)
    build_indexes(loaded, ws, result, log)
    measure_quality(args, loaded, table, ws, result, phases, log)
    measure_speed(args, loaded, ws, result, phases, n_latency, log)

    if peer_ready:
        phases.start("semantic-router")
        result["peer"] = measure_peer(
            ws, table, result["quality"], n_latency=n_latency, timeout=args.peer_timeout, log=log
        )
    phases.stop()

    return finish(result, quick=args.quick, started=started)


def load_models(setups: list[Setup], ws: Workspace, result: dict[str, Any], log: Log) -> Loaded:
    """Load every setup here (converting on first use), then time a load in a fresh process."""
    loaded = Loaded(setups, {}, {}, ws.data_dir / "models" / "derived")
    result["models"] = {}
    for setup in setups:
        loaded.embedders[setup.key], result["models"][setup.key] = load_setup(setup, loaded.cache)
        log(f"{setup.label}: loaded in {result['models'][setup.key]['load_s']:.2f} s (first use)")
    for setup in setups:
        result["models"][setup.key]["fresh_process"] = fresh = fresh_process_load(setup, loaded.cache)
        log(f"{setup.label}: fresh process to first query {fresh['wall_s']:.2f} s (loader {fresh['load_s']:.2f} s)")
    result["model"] = {
        "id": loaded.default.model_id,
        "backend": loaded.default.backend,
        "load_s": result["models"][DEFAULT.key]["load_s"],
    }
    return loaded


def build_indexes(loaded: Loaded, ws: Workspace, result: dict[str, Any], log: Log) -> None:
    """A full index build per setup, each in a worker process of its own (one runtime, as the
    indexer command runs), against the bare encode throughput of the same texts."""
    builds: dict[str, Any] = {}
    for setup in loaded.setups:
        with worker_for(setup, loaded.cache) as worker:
            builds[setup.key] = build = worker.call(
                "build", routes_dir=str(ws.routes_dir), data_dir=str(index_dir(ws, setup))
            )
        log(f"{setup.label}: index build of {build['examples']} examples in {build['build_s']:.1f} s")
        loaded.stores[setup.key] = EdgeStore(index_dir(ws, setup))
    result["speed"] = {
        "index_build": builds[DEFAULT.key],
        "index_build_by_setup": {key: build["build_s"] for key, build in builds.items()},
        "index_builds": builds,
    }


def worker_for(setup: Setup, cache: Path) -> Worker:
    """A worker process holding `setup`'s model."""
    return Worker(setup.model, setup.backend, setup.threads, cache, label=setup.label)


def index_dir(ws: Workspace, setup: Setup) -> Path:
    """Where a setup's index lives (the default's is the workspace's data directory)."""
    return ws.data_dir if setup.key == DEFAULT.key else ws.root / f"index-{setup.key}"


def measure_quality(
    args: argparse.Namespace,
    loaded: Loaded,
    table: RouteTable,
    ws: Workspace,
    result: dict[str, Any],
    phases: Phases,
    log: Log,
) -> None:
    """Quality on test: the default, today's path decision by decision, the quality model, and
    both fine-tuned."""
    val, test = ws.splits.val, ws.splits.test
    phases.start("quality: this router")
    result["quality"] = quality = our_quality(loaded.default, loaded.stores[DEFAULT.key], val, test, log=log)
    phases.start("quality: today's path, decision by decision")
    result["decisions_vs_today"] = same_decisions(loaded, quality, test, log)
    if INT8.key in loaded.embedders:  # opt-in: its own index, calibrated again on it
        phases.start("quality: int8 weights")
        int8 = our_quality(loaded.embedders[INT8.key], loaded.stores[INT8.key], val, test, log=log)
        quality["int8_default"], quality["int8_calibrated"] = int8["ours_default"], int8["ours_calibrated"]
        result["int8_decisions_vs_today"] = same_decisions(loaded, quality, test, log, setup=INT8)
    has_mpnet = QUALITY.key in loaded.embedders
    if has_mpnet:
        phases.start("quality: all-mpnet-base-v2")
        mpnet = our_quality(loaded.embedders[QUALITY.key], loaded.stores[QUALITY.key], val, test, log=log)
        quality["mpnet_default"], quality["mpnet_calibrated"] = mpnet["ours_default"], mpnet["ours_calibrated"]
    if args.skip_finetune:
        return
    runs = [("ours", DEFAULT, "finetune")]
    if has_mpnet and not args.skip_mpnet_finetune:
        runs.append(("mpnet", QUALITY, "finetune_mpnet"))
    for prefix, setup, key in runs:
        phases.start(f"quality: fine-tuned {setup.model}")
        tuned = finetuned_quality(
            table,
            ws.root,
            val,
            test,
            quick=args.quick,
            base_model=setup.model,
            backend=setup.backend,
            cache_dir=loaded.cache,
            tag="" if prefix == "ours" else prefix,
            log=log,
        )
        quality[f"{prefix}_finetuned_default"] = tuned.pop("default")
        quality[f"{prefix}_finetuned_calibrated"] = tuned.pop("calibrated")
        result[key] = tuned


def measure_speed(
    args: argparse.Namespace,
    loaded: Loaded,
    ws: Workspace,
    result: dict[str, Any],
    phases: Phases,
    n_latency: int,
    log: Log,
) -> None:
    """Bare encode by batch size and side by side (idle and beside a neighbour), each setup
    served over HTTP, and incremental re-index."""
    speed = result["speed"]
    duration = args.duration or (3.0 if args.quick else 10.0)
    test_texts = [q.text for q in ws.splits.test]
    rng = random.Random(5)
    latency_queries = rng.sample(test_texts, min(n_latency, len(test_texts)))
    load_queries = rng.sample(test_texts, len(test_texts))
    contention_queries = latency_queries[:CONTENTION_QUERIES]
    neighbour_texts = [q.text for q in ws.splits.train]

    phases.start("worker processes")
    workers = {setup.key: worker_for(setup, loaded.cache) for setup in loaded.setups}
    try:
        phases.start("bare encode by batch size")
        speed["encode_batching"] = workers[DEFAULT.key].call("batching", texts=test_texts, budget_s=duration)
        log(f"bare encode by batch size: {speed['encode_batching']['levels']}")

        phases.start("bare encode side by side, idle and beside a CPU-heavy neighbour")
        probes = {key: (lambda q, w=w: Timed(w.seconds("encode", text=q))) for key, w in workers.items()}
        speed["bare_encode"] = idle_and_loaded(probes, latency_queries, neighbour_texts, ws.root)
        log(f"bare encode p50/p99 ms: { {k: _p(v) for k, v in speed['bare_encode'].items()} }")

        speed["service"] = {}
        for setup in (s for s in loaded.setups if s.key != INT8.key):  # int8: quality and bare encode only
            phases.start(f"service on {setup.label}: latency and throughput")
            speed["service"][setup.key] = serve_and_measure(
                setup,
                workers[setup.key],
                ws.routes_dir,
                index_dir(ws, setup),
                loaded.cache,
                latency_queries=latency_queries,
                load_queries=load_queries,
                duration=duration,
                work=ws.root,
                log=log,
                contention=(contention_queries, neighbour_texts) if setup.key != QUALITY.key else None,
            )
        speed["latency"] = speed["service"][DEFAULT.key]["latency"]
        speed["throughput"] = speed["service"][DEFAULT.key]["throughput"]

        phases.start("incremental re-index")
        in_process = workers[DEFAULT.key].call(
            "reindex", routes_dir=str(ws.routes_dir), data_dir=str(ws.data_dir), tag="bench edit 1"
        )
    finally:
        for worker in workers.values():
            worker.close()
    speed["reindex"] = {
        "in_process": in_process,
        "cli": reindex_cli(ws.routes_dir, ws.data_dir, "bench edit 2"),
        "cli_today": reindex_cli(ws.routes_dir, ws.data_dir, "bench edit 3", env=backend_env(TODAY)),
        "model_load_s": result["model"]["load_s"],
    }
    log(f"re-index after one route change: {speed['reindex']}")


def _p(summary: dict[str, Any]) -> str:
    idle, loaded = summary["idle"], summary["neighbour"]
    return f"{idle.get('p50_ms')}/{idle.get('p99_ms')} idle, {loaded.get('p50_ms')}/{loaded.get('p99_ms')} loaded"


def choose_setups(args: argparse.Namespace, result: dict[str, Any], log: Log) -> list[Setup]:
    """Today's path and the default always; int8 and the quality model (when installed) unless
    skipped."""
    setups = [TODAY, DEFAULT] + ([] if args.skip_int8 else [INT8])
    if args.skip_mpnet:
        result["notes"].append("all-mpnet-base-v2 left out (--skip-mpnet).")
        return setups
    try:
        ensure_quality_model()
    except ModelUnavailable as exc:
        log(f"all-mpnet-base-v2 left out: {exc}")
        result["notes"].append(f"all-mpnet-base-v2 not measured: {exc}")
        return setups
    return [*setups, QUALITY]


def backend_env(setup: Setup) -> dict[str, str]:
    """The environment that makes the indexer command load `setup`."""
    return {
        "ROUTER_EMBEDDING__MODEL": setup.model,
        "ROUTER_EMBEDDING__BACKEND": setup.backend,
        "ROUTER_EMBEDDING__THREADS": str(setup.threads),
    }


def same_decisions(
    loaded: Loaded, quality: dict[str, Any], test: Sequence[Any], log: Log, *, setup: Setup = DEFAULT
) -> dict[str, Any]:
    """Today's path against `setup` on test: each with its own index, under the routes'
    defaults and under the parameters calibrated for the default."""
    texts = [q.text for q in test]
    params = {
        name: DecisionParams(**quality[key]["params"])
        for name, key in (("defaults", "ours_default"), ("calibrated", "ours_calibrated"))
    }
    before = routed(loaded.embedders[TODAY.key], loaded.stores[TODAY.key], texts, params)
    after = routed(loaded.embedders[setup.key], loaded.stores[setup.key], texts, params)
    found = compare(texts, before, after)
    log(f"{setup.label}: decisions changed vs today's path: { {k: v['changed'] for k, v in found.items()} }")
    return found


def finish(result: dict[str, Any], *, quick: bool, started: float) -> dict[str, Any]:
    """Targets, closing facts and notes on how far the timings can be trusted."""
    result["targets"] = check_targets(result)
    result["backend_targets"] = check_backend_targets(result)
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


def serve_and_measure(
    setup: Setup,
    worker: Worker,
    routes_dir: Path,
    data_dir: Path,
    cache: Path,
    *,
    latency_queries: list[str],
    load_queries: list[str],
    duration: float,
    work: Path,
    log: Log,
    contention: tuple[Sequence[str], Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Start the service (`python -m service`, its own process) on the setup's index; measure
    latency against the setup's worker (bare encode, in-process classify) and throughput, and
    with `contention` (queries, neighbour texts) latency idle and beside a CPU-heavy neighbour."""
    env = {
        **backend_env(setup),
        "ROUTER_ROUTES_DIR": str(routes_dir),
        "ROUTER_INDEX__DATA_DIR": str(data_dir),
        "ROUTER_INDEX__MODELS_DIR": str(cache),
        "ROUTER_LOG__LEVEL": "WARNING",
    }
    worker.call("open", data_dir=str(data_dir))
    with service_process(env) as service:
        client = ClassifyClient(service.url)
        try:
            ready = json.loads(urllib.request.urlopen(service.url + "/readyz", timeout=30).read())["checks"]
            out: dict[str, Any] = {"backend": ready["backend"], "model": ready["model"]}
            log(f"service ({out['backend']}) up at {service.url}; measuring {len(latency_queries)} single queries")
            out["latency"] = interleaved_latency(worker, client, latency_queries)
            log(f"latency p50 ms: { {k: v.get('p50_ms') for k, v in out['latency'].items()} }")
            out["throughput"] = http_throughput(service.url, load_queries, duration=duration, work=work)
            log(f"throughput: {[lv['requests_per_s'] for lv in out['throughput']['levels']]} req/s")
            if contention is not None:
                queries, neighbour_texts = contention
                out["contention"] = idle_and_loaded(probes_for(worker, client), queries, neighbour_texts, work)
                log(f"idle vs neighbour: { {k: _p(v) for k, v in out['contention'].items()} }")
        finally:
            client.close()
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
