"""Serving close to the machine's limit (issue 23): one process against several workers, and the
code before, in one run, as ratios to the bare model on the same machine.

CLINC150's train split (15,000 examples in 150 routes) is indexed once; a bench worker process
(`bench.worker`: the model alone, as the service loads it) measures the bare encode of one query
and the encode ceiling by batch size (1, 8, 32). Then each configuration is served by `python -m
service` in turn, alone on the machine:

- classify over HTTP, one client, interleaved query by query with the bare encode in the bench
  worker (a burst of load elsewhere hits both alike), every query new;
- throughput at 1, 8 and 32 concurrent clients from a separate load-generator process
  (`bench.throughput`), every query new;
- memory of each serving process (RSS, and PSS: shared pages divided among their sharers).

Configurations: `--baseline-root DIR` (a checkout of the code before, e.g. `git archive
integrate | tar -x -C DIR`) with one process (`--baseline-workers N`: N workers), then this
checkout with `ROUTER_HTTP__WORKERS=1`, with each of `--engine-scan` (the embedded index
searched by Qdrant Edge's engine instead of scanned in memory), each of `--workers` and each of
`--pinned`.

    python -m bench.serving [--workers 2] [--engine-scan 2] [--baseline-root DIR] [--shipped] [--duration 10]
        [--json PATH] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.contention import Timed, interleaved
from bench.data import load_splits, write_jsonl
from bench.latency import ClassifyClient
from bench.report import write_named_section
from bench.stats import ratio
from bench.throughput import http_throughput
from bench.worker import Worker
from devkit.service_process import index_with_checkout, service_process
from devkit.serving import ROOT, SHIPPED_EVALS
from indexer.importer import write_routes_from_jsonl
from router_core.labelled import parse_labelled
from router_core.settings import IndexSettings

MODEL = "all-MiniLM-L6-v2"
# ../shared/datasets of the main checkout, or of a worktree under wt/
DATASETS = next(
    (p for p in (ROOT.parent / "shared" / "datasets", ROOT.parents[1] / "shared" / "datasets") if p.is_dir()),
    ROOT.parent / "shared" / "datasets",
)


def memory_mb(pid: int) -> dict[str, float]:
    """RSS and PSS of a process in MB (Linux smaps_rollup)."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            if name in ("Rss", "Pss"):
                out[name.lower()] = round(int(value.split()[0]) / 1024, 1)
    return out


def serving_pids(pid: int) -> list[int]:
    """The processes that serve: the service itself, or its workers when it supervises some."""
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return children or [pid]


def stage_ms(url: str) -> dict[str, float]:
    """Embed and search time per routed query over the whole run, from the service's metrics
    (with several workers: all of them)."""
    text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    sums: dict[str, float] = {"embed": 0.0, "search": 0.0, "decisions": 0.0}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("router_classify_stage_seconds_sum"):
            sums["embed" if 'stage="embed"' in name else "search"] += float(value)
        elif name.startswith("router_decisions_total"):
            sums["decisions"] += float(value)
    n = sums["decisions"] or 1.0
    return {"embed_ms": round(sums["embed"] / n * 1e3, 3), "search_ms": round(sums["search"] / n * 1e3, 3)}


def commit_of(root: Path) -> str:
    """Short commit of a checkout (an exported tree has none)."""
    command = ["git", "rev-parse", "--short", "HEAD"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    return done.stdout.strip() or "exported tree"


def measure_config(
    label: str,
    root: Path,
    workers: int | None,
    env: dict[str, str],
    worker: Worker,
    *,
    latency_queries: list[str],
    load_queries: list[str],
    duration: float,
    work: Path,
) -> dict[str, Any]:
    """One configuration served alone: latency against the bare encode, throughput, memory."""
    with service_process(env, workers=workers, root=root) as service:
        client = ClassifyClient(service.url)
        try:
            tag = f"{label} {time.monotonic()}"
            probes = {
                "bare_encode": lambda q: Timed(worker.seconds("encode", text=q)),
                "http": client.classify,
            }
            queries = [f"{q} ({tag} {i})" for i, q in enumerate(latency_queries)]
            latency = interleaved(probes, queries, warmup=20)
        finally:
            client.close()
        throughput = http_throughput(service.url, load_queries, duration=duration, work=work)
        memory = [memory_mb(pid) for pid in serving_pids(service.proc.pid)]
        stages = stage_ms(service.url)
    return {
        "label": label,
        "commit": commit_of(root),
        "workers": workers or 1,
        "latency": latency,
        "http_vs_bare_p50": ratio(latency["http"]["p50_ms"], latency["bare_encode"]["p50_ms"]),
        "throughput": throughput["levels"],
        "memory": memory,
        "stages_one_process": stages,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Index the routes (CLINC150 train, or the shipped routes), measure the bare model, then
    every configuration in turn."""
    rng = random.Random(23)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.shipped:
            routes = ROOT / "routes"
            path = SHIPPED_EVALS / "shipped-test.jsonl"
            test = [q.text for q in parse_labelled(path.read_text(encoding="utf-8").splitlines(), where=path.name)]
        else:
            splits = load_splits(args.datasets)
            test = [q.text for q in splits.test]
            routes = work / "routes"
            write_routes_from_jsonl(write_jsonl(splits.train, work / "train.jsonl"), routes)
        # each query made unique where it is sent: the service caches the vectors of texts it saw
        latency_queries = [rng.choice(test) for _ in range(args.latency_queries)]
        load_queries = rng.sample(test, len(test))
        data = work / "index"
        cache = args.models_dir or IndexSettings().derived_models_dir
        env = {
            "ROUTER_ROUTES_DIR": str(routes),
            "ROUTER_INDEX__DATA_DIR": str(data),
            "ROUTER_INDEX__MODELS_DIR": str(cache),
            "ROUTER_DECISION_LOG__RECORD": "uncertain",
        }
        started = time.perf_counter()
        with Worker(MODEL, "onnx", 0, cache, label="bench model") as worker:
            built = worker.call("build", routes_dir=str(routes), data_dir=str(data))
            ceiling = worker.call("batching", texts=test, budget_s=args.ceiling_s)
            configs: list[tuple[str, Path, int | None, dict[str, str]]] = []
            if args.baseline_root is not None:  # older than ROUTER_HTTP__WORKERS: one process
                n = args.baseline_workers
                # the index its own indexer builds: a newer one may record what it does not know
                before = {**env, "ROUTER_INDEX__DATA_DIR": str(work / "index-before")}
                index_with_checkout(args.baseline_root, before)
                configs.append(
                    (
                        f"before ({args.baseline_label}), {n or 1} {'workers' if n else 'process'}",
                        args.baseline_root,
                        n,
                        {"ROUTER_INDEX__DATA_DIR": before["ROUTER_INDEX__DATA_DIR"]},
                    )
                )
            if not args.skip_one:
                configs.append(("1 process (ROUTER_HTTP__WORKERS=1)", ROOT, 1, {}))
            engine = {"ROUTER_INDEX__SCAN": "engine"}
            configs += [(f"{n} workers, engine scan", ROOT, n, engine) for n in args.engine_scan]
            configs += [(f"{n} workers", ROOT, n, {}) for n in args.workers]
            pinned = {"ROUTER_HTTP__PIN_WORKERS": "true"}
            configs += [(f"{n} workers, pinned", ROOT, n, pinned) for n in args.pinned]
            runs = [
                measure_config(
                    label,
                    root,
                    n,
                    {**env, **extra},
                    worker,
                    latency_queries=latency_queries,
                    load_queries=load_queries,
                    duration=args.duration,
                    work=work,
                )
                for label, root, n, extra in configs
            ]
            ceiling_after = worker.call("batching", texts=test, budget_s=args.ceiling_s)
    return {
        "routes": "shipped" if args.shipped else "clinc150",
        "examples": built.get("examples"),
        "ceiling": ceiling["levels"],
        "ceiling_after": ceiling_after["levels"],
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cores": len(os.sched_getaffinity(0)),
    }


def _short(result: dict[str, Any]) -> str:
    return "the shipped routes" if result.get("routes") == "shipped" else "CLINC150"


def _indexed(result: dict[str, Any]) -> str:
    engine = "embedded Qdrant Edge, exact: its vectors scanned in memory unless the configuration says engine scan"
    if result.get("routes") == "shipped":
        return f"The shipped routes indexed ({result['examples']} examples, 6 routes, {engine}; queries from evals/)"
    return f"CLINC150 train indexed ({result['examples']} examples, 150 routes, {engine}; queries from its test split)"


def _level(run: dict[str, Any], clients: int) -> dict[str, Any]:
    level: dict[str, Any] = next(lv for lv in run["throughput"] if lv["clients"] == clients)
    return level


def render(result: dict[str, Any], command: str) -> str:
    """The BENCHMARKS.md section."""
    at32 = {lv["batch"]: lv["queries_per_s"] for lv in result["ceiling"]}
    after32 = {lv["batch"]: lv["queries_per_s"] for lv in result["ceiling_after"]}
    ceiling = at32[32]
    rows = []
    for run in result["runs"]:
        lat, t32, t1 = run["latency"], _level(run, 32), _level(run, 1)
        p50, p99 = t32["latency"].get("p50_ms", 0), t32["latency"].get("p99_ms", 0)
        mem = run["memory"]
        rss = "/".join(f"{m['rss']:.0f}" for m in mem)
        pss = "/".join(f"{m['pss']:.0f}" for m in mem)
        rows.append(
            f"| {run['label']} | {lat['bare_encode']['p50_ms']:.2f} | {lat['http']['p50_ms']:.2f} / "
            f"{lat['http']['p99_ms']:.2f} | **{run['http_vs_bare_p50']:.2f}x** | {t1['requests_per_s']:.1f} | "
            f"{_level(run, 8)['requests_per_s']:.1f} | {t32['requests_per_s']:.1f} | "
            f"**{t32['requests_per_s'] / ceiling:.0%}** | {p50:.1f} / {p99:.1f} | **{ratio(p99, p50):.2f}x** | "
            f"{sum(lv['errors'] for lv in run['throughput'])} | {rss} | {pss} |"
        )
    return (
        f"## Serving close to the machine's limit (issue 23): {_short(result)}\n\n"
        f"Command: `{command}` ({result['seconds']} s; {result['cores']} cores; load average at the end "
        f"{result['load_average']}). {_indexed(result)}; every "
        "configuration served by `python -m service` alone in turn, default "
        "settings (access log at INFO, decision log `uncertain`). Bare encode: the model alone in a bench process, "
        "one query, interleaved query by query with the HTTP classify of the same run. Ceiling: bare encode in "
        f"batches of 32, {ceiling:.1f} queries/s (batch 1: {at32[1]:.1f}, batch 8: {at32[8]:.1f}; measured again "
        f"after the services: {after32[32]:.1f} at 32). Throughput from a separate load-generator process on the "
        "same 2 cores, every query new.\n\n"
        "| configuration | bare encode p50 ms | HTTP classify p50 / p99 ms | HTTP p50 / bare | 1 client req/s | "
        "8 clients req/s | 32 clients req/s | 32 clients / ceiling | 32 clients p50 / p99 ms | p99 / p50 | errors | "
        "RSS per serving process MB | PSS MB |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "Targets (issue 23): HTTP p50 / bare <= 1.3x; 32 clients / ceiling >= 70%; p99 / p50 at 32 clients <= 3x.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print, and with --write put the section into BENCHMARKS.md."""
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__)
    parser.add_argument("--workers", type=int, nargs="*", default=[2], help="worker counts to serve with")
    parser.add_argument("--pinned", type=int, nargs="*", default=[], help="worker counts, pinned to their cores")
    parser.add_argument(
        "--engine-scan",
        type=int,
        nargs="*",
        default=[],
        help="worker counts, the embedded index searched by Qdrant Edge (ROUTER_INDEX__SCAN=engine)",
    )
    parser.add_argument("--skip-one", action="store_true", help="leave out the one-process configuration")
    parser.add_argument("--baseline-root", type=Path, default=None, help="checkout of the code before")
    parser.add_argument("--baseline-label", default="the code before", help="what the baseline is, for the table")
    parser.add_argument(
        "--baseline-workers",
        type=int,
        default=None,
        help="serve the baseline with this many workers (a checkout that has the setting)",
    )
    parser.add_argument("--shipped", action="store_true", help="the shipped routes (320 examples), not CLINC150")
    parser.add_argument("--datasets", type=Path, default=DATASETS, help="default: ../shared/datasets")
    parser.add_argument("--models-dir", type=Path, default=None, help="converted models (default: the user cache)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per throughput level")
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--ceiling-s", type=float, default=8.0, help="seconds of the encode ceiling measure")
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    parser.add_argument("--json", type=Path, help="also write the figures there (for bench.scale)")
    args = parser.parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    if args.write:
        given = " ".join(argv) if argv is not None else " ".join(sys.argv[1:])
        section = "serving-shipped" if args.shipped else "serving"
        write_named_section(Path("BENCHMARKS.md"), section, render(result, f"python -m bench.serving {given}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
