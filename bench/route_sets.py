"""Several route sets in one service: classify latency and memory with 1 set and with 10 sets of
the shipped size, in one run.

Ten copies of the shipped routes (`routes/`, 6 routes, 320 examples each) are indexed as ten
sets (`s0`..`s9`) of one routes root, one index each. Two `python -m service` processes run side
by side: one serving a root with `s0` only, one serving all ten. Classify requests go to each
process in turn (one client, keep-alive, interleaved: both see the same machine load), every
query a text never sent before (the shipped test queries, numbered), to `/v1/sets/<set>/classify`
(the ten-set process rotating over its sets). p50 and p99 of each, the ratio, and each
process's RSS once every set has routed; the model's own cost is measured in a fresh process.

    python -m bench.route_sets [--sets 10] [--requests 400] [--write]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.report import write_named_section
from bench.stats import percentile, ratio
from devkit.routes_dirs import index_route_sets, shipped_sets
from devkit.service_process import service_process
from devkit.serving import SHIPPED_EVALS, settings_for
from router_core import load_embedder
from router_core.labelled import parse_labelled

MODEL_COST = """
from router_core import load_embedder
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS:")).split()[1]) / 1024
import onnxruntime, qdrant_edge, litestar  # what the service imports before its model
before = rss()
load_embedder().encode_queries(["warm up"])
print(rss() - before)
"""


class Client:
    """POST /v1/sets/<set>/classify over one keep-alive connection."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=120)

    def seconds(self, route_set: str, query: str) -> float:
        """Time of one classify (RuntimeError unless 200)."""
        started = time.perf_counter()
        body = json.dumps({"query": query})
        self._conn.request("POST", f"/v1/sets/{route_set}/classify", body, {"content-type": "application/json"})
        response = self._conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"classify answered {response.status}: {payload[:300]!r}")
        return time.perf_counter() - started


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        return int(next(line for line in fh if line.startswith("VmRSS:")).split()[1]) / 1024


def measure(urls: dict[int, str], names: dict[int, list[str]], requests: int) -> dict[int, list[float]]:
    """Interleaved classify timings per process (by its set count), each query new."""
    path = SHIPPED_EVALS / "shipped-test.jsonl"
    queries = [q.text for q in parse_labelled(path.read_text(encoding="utf-8").splitlines(), where=path.name)]
    clients = {count: Client(url) for count, url in urls.items()}
    tag = os.getpid()
    for count, client in clients.items():  # warm-up: a process's first calls are slower
        for i in range(20):
            client.seconds(names[count][i % len(names[count])], f"{queries[i % len(queries)]} (warm-up {tag}-{i})")
    times: dict[int, list[float]] = {count: [] for count in clients}
    for i in range(requests):
        order = sorted(clients) if i % 2 == 0 else sorted(clients, reverse=True)
        for count in order:
            route_set = names[count][i % len(names[count])]
            times[count].append(clients[count].seconds(route_set, f"{queries[i % len(queries)]} (#{tag}-{count}-{i})"))
    return times


def run(sets: int, requests: int) -> dict[str, Any]:
    """Index the sets, serve 1 and `sets` of them side by side, measure."""
    names = [f"s{i}" for i in range(sets)]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        many = settings_for(shipped_sets(Path(tmp) / "many", names), data)
        one = settings_for(shipped_sets(Path(tmp) / "one", names[:1]), data)
        started = time.perf_counter()
        index_route_sets(many, load_embedder())  # one index per set; `one` serves s0's
        indexed = time.perf_counter() - started
        env = {
            count: {"ROUTER_ROUTES_DIR": str(s.routes_dir), "ROUTER_INDEX__DATA_DIR": str(data)}
            for count, s in ((1, one), (sets, many))
        }
        with service_process(env[1]) as single, service_process(env[sets]) as several:
            procs = {1: single, sets: several}
            times = measure({c: p.url for c, p in procs.items()}, {1: names[:1], sets: names}, requests)
            rss = {c: round(rss_mb(p.proc.pid), 1) for c, p in procs.items()}
    cost = subprocess.run([sys.executable, "-c", MODEL_COST], capture_output=True, text=True, check=True)
    model_mb = round(float(cost.stdout.strip().splitlines()[-1]), 1)
    p50 = {c: percentile(t, 50) * 1e3 for c, t in times.items()}
    return {
        "sets": sets,
        "requests": requests,
        "index_seconds": round(indexed, 1),
        "p50_ms": {str(c): round(v, 2) for c, v in p50.items()},
        "p99_ms": {str(c): round(percentile(t, 99) * 1e3, 2) for c, t in times.items()},
        "p50_ratio": ratio(p50[sets], p50[1]),
        "rss_mb": {str(c): v for c, v in rss.items()},
        "rss_per_extra_set_mb": round((rss[sets] - rss[1]) / (sets - 1), 1),
        "model_mb": model_mb,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def render(result: dict[str, Any], command: str) -> str:
    """The BENCHMARKS.md section."""
    n = result["sets"]
    p50, p99, rss = result["p50_ms"], result["p99_ms"], result["rss_mb"]
    return (
        "## Several route sets: 1 set against 10\n\n"
        f"Command: `{command}`. Copies of the shipped routes (6 routes, 320 examples) as route sets, one index "
        f"each; two `python -m service` processes side by side (1 set, {n} sets), {result['requests']} classify "
        "requests each over HTTP, interleaved, every query new (shipped test queries, numbered), the "
        f"{n}-set process rotating over its sets; load average at the end {result['load_average']}.\n\n"
        "| service | classify p50 | p99 | p50 x 1 set | RSS |\n|---|---|---|---|---|\n"
        f"| 1 set | {p50['1']} ms | {p99['1']} ms | 1.00x | {rss['1']} MB |\n"
        f"| {n} sets | {p50[str(n)]} ms | {p99[str(n)]} ms | {result['p50_ratio']:.2f}x | {rss[str(n)]} MB |\n\n"
        f"Each set beyond the first: {result['rss_per_extra_set_mb']} MB of RSS (its index: the version's vectors "
        "and examples in memory, 0.5 MB for 320 examples of 384 floats; with `ROUTER_INDEX__SCAN=engine` Qdrant "
        "Edge maps and touches a 32 MB vector storage per opened version, 33.5 MB per extra set measured before the "
        "matrix scan); the model, loaded once for all sets "
        f"(`service/models.py`), costs {result['model_mb']} MB on its own in a fresh process. "
        "Target (issue 26): 10 sets within 10% of 1 set at p50.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print, and with --write put the section into BENCHMARKS.md."""
    parser = argparse.ArgumentParser(prog="python -m bench.route_sets", description=__doc__)
    parser.add_argument("--sets", type=int, default=10)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.sets < 2:
        parser.error("--sets must be at least 2")
    result = run(args.sets, args.requests)
    print(json.dumps(result, indent=1))
    if args.write:
        command = f"python -m bench.route_sets --sets {args.sets} --requests {args.requests} --write"
        write_named_section(Path("BENCHMARKS.md"), "route-sets", render(result, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
