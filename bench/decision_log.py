"""What recording costs: classify latency and throughput with the decision log at `all` against
`none`, in one run (`python -m bench.decision_log`).

Two services (`python -m service`, processes of their own) serve the same index of the shipped
routes, one recording every decision (`ROUTER_DECISION_LOG__RECORD=all`, SQLite under the data
directory) and one recording nothing; the load generator (`bench.throughput`, a process of its
own) measures them in alternating rounds, so drift on a shared machine falls on both alike. Every
query is unique, so every request embeds and, at `all`, writes a row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.sections import markers, write_section
from bench.throughput import http_throughput
from devkit.service_process import service_process
from devkit.serving import ROOT, SHIPPED_EVALS, SHIPPED_ROUTES, settings_for
from router_core.decision_log import DecisionLogSettings
from service.routing.stage import RouteRequest
from service.services import Services

MODES = ("none", "all")


def queries() -> list[str]:
    """The shipped evaluation queries (the load generator makes each request unique)."""
    texts = []
    for path in sorted(SHIPPED_EVALS.glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return texts


def measure(rounds: int, levels: Sequence[int], duration: float, work: Path) -> dict[str, Any]:
    """Alternate the two services `rounds` times at each concurrency level."""
    routes, data = work / "routes", work / "data"
    shutil.copytree(SHIPPED_ROUTES, routes)
    env = {"ROUTER_ROUTES_DIR": str(routes), "ROUTER_INDEX__DATA_DIR": str(data), "ROUTER_LOG__LEVEL": "warning"}
    subprocess.run(
        [sys.executable, "-m", "indexer", "--quiet"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    texts = queries()
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    with (
        service_process({**env, "ROUTER_DECISION_LOG__RECORD": "none"}) as off,
        service_process({**env, "ROUTER_DECISION_LOG__RECORD": "all"}) as on,
    ):
        urls = {"none": off.url, "all": on.url}
        for r in range(rounds):
            order = MODES if r % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                levels_run = http_throughput(urls[mode], texts, levels, duration=duration, warmup=1.0, work=work)
                runs[mode].append(levels_run)
    rows = _count_rows(data / "decisions.sqlite3")
    cost = record_cost(work)
    return {
        "rounds": rounds,
        "levels": list(levels),
        "duration_s": duration,
        "runs": runs,
        "rows_written": rows,
        "record_cost": cost,
    }


def record_cost(work: Path, calls: int = 20_000) -> dict[str, float]:
    """The handler's side of recording, in process: microseconds per `DecisionLog.record` call
    (a real decision of the shipped index, mode `all`, the writer thread writing SQLite meanwhile),
    and how long the writer took to drain them all."""
    settings = settings_for(work / "routes", work / "data").model_copy(
        update={"decision_log": DecisionLogSettings(record="all", path=work / "cost.sqlite3", queue_size=calls)}
    )
    services = Services.build(settings)

    async def run() -> dict[str, float]:
        await services.start()
        try:
            request = RouteRequest.query("How do I use async with Rust?")
            [item] = await services.routes.routing.route([request])
            log = services.decisions
            started = time.perf_counter()
            for i in range(calls):
                log.record([item], [request], request_id=f"cost-{i}", caller="key-0000aaaa")
            per_call_us = (time.perf_counter() - started) / calls * 1e6
            await log.run(lambda store: None)  # after everything queued before it
            drained = time.perf_counter() - started
        finally:
            await services.stop()
        return {"calls": calls, "record_us": round(per_call_us, 2), "drained_s": round(drained, 2)}

    return asyncio.run(run())


def _count_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM decisions").fetchone()[0])


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per level and mode: the median over rounds of throughput, p50 and p99."""
    out = []
    for level in result["levels"]:
        row: dict[str, Any] = {"clients": level}
        for mode in MODES:
            picked = [next(x for x in run["levels"] if x["clients"] == level) for run in result["runs"][mode]]
            row[mode] = {
                "requests_per_s": round(statistics.median(p["requests_per_s"] for p in picked), 1),
                "p50_ms": round(statistics.median(p["latency"]["p50_ms"] for p in picked), 2),
                "p99_ms": round(statistics.median(p["latency"]["p99_ms"] for p in picked), 2),
                "errors": sum(p["errors"] for p in picked),
            }
        out.append(row)
    return out


def render(rows: list[dict[str, Any]], result: dict[str, Any], command: str) -> str:
    """The BENCHMARKS.md section."""
    start, end = markers("decisionlog")
    lines = [
        start,
        "## Decision log: recording `all` against `none`",
        "",
        f"Command: `{command}`. Two services on the same index of the shipped routes, one with "
        "`ROUTER_DECISION_LOG__RECORD=all` (SQLite under the data directory), one with `none`; "
        f"{result['rounds']} alternating rounds of {result['duration_s']:.0f} s per level, every query unique "
        f"(each request embeds and, at `all`, writes a row: {result['rows_written']:,} rows written). "
        "Medians over the rounds; `all / none` is the ratio (throughput: higher is better; latency: lower).",
        "",
        "| clients | throughput none | throughput all | all / none "
        "| p50 none | p50 all | all / none | p99 none | p99 all | all / none |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        n, a = r["none"], r["all"]
        lines.append(
            f"| {r['clients']} | {n['requests_per_s']} req/s | {a['requests_per_s']} req/s | "
            f"{a['requests_per_s'] / n['requests_per_s']:.3f} | {n['p50_ms']} ms | {a['p50_ms']} ms | "
            f"{a['p50_ms'] / n['p50_ms']:.3f} | {n['p99_ms']} ms | {a['p99_ms']} ms | {a['p99_ms'] / n['p99_ms']:.3f} |"
        )
    cost = result["record_cost"]
    p50_none = rows[0]["none"]["p50_ms"]
    lines += [
        "",
        f"In process (the handler's side, without the load's noise): `DecisionLog.record` takes "
        f"{cost['record_us']} µs per request at `all` ({100 * cost['record_us'] / 1000 / p50_none:.2f}% of the "
        f"{p50_none} ms one-client p50 above); the writer thread drained {cost['calls']:,} records into SQLite "
        f"in {cost['drained_s']} s.",
        "",
        end,
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decision_log", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--write", action="store_true", help="record the figures in BENCHMARKS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="router-bench-log-") as tmp:
        result = measure(args.rounds, args.levels, args.duration, Path(tmp))
    rows = summary(result)
    command = (
        f".venv/bin/python -m bench.decision_log --rounds {args.rounds} --levels {' '.join(map(str, args.levels))} "
        f"--duration {args.duration:.0f} --write"
    )
    section = render(rows, result, command)
    print(json.dumps(rows, indent=2))
    print(section)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", "decisionlog", section)
    errors = sum(r[m]["errors"] for r in rows for m in MODES)
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
