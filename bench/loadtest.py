"""Load test: concurrent clients against /v1/classify while re-indexes run (issue 4 proof), and
while the service itself re-indexes through POST /admin/reindex (issue 10, item 19).

    .venv/bin/python -m bench.loadtest [--clients 32] [--duration 60] [--reindexes 2]
                                       [--admin-reindexes 2] [--admin-examples 2000] [--write]

Starts the real service (`python -m service`) and the re-index job (`python -m indexer`) as
separate processes on an embedded index in a temporary directory, loopback only. Half of the
queries repeat (their answers are compared), half are new (so they are embedded, with the model
an admin re-index also uses). Every response must be 200, name an index version that was
published, and agree with every other response of the same version for the same query (no
mixed answers). An admin re-index adds a route of `--admin-examples` new examples and the
classify latency of requests overlapping it is reported on its own. Prints the figures and,
with --write, records them in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.sections import write_section
from bench.stats import percentile
from devkit.processes import stop_process
from devkit.routes_dirs import add_route

ROOT = Path(__file__).resolve().parents[1]
QUERIES = [
    "How do I use async with Rust?",
    "What is 15% of 200?",
    "what discount can I offer on a three year contract",
    "how is my team tracking against quota this quarter",
    "can we set up a proof of concept environment for the prospect",
    "does the product support SSO with Okta",
    "What's a good recipe for banana bread?",
    "book a table for two at an italian restaurant tonight",  # only routable after re-index 1
    "plan a weekend hiking trip in the alps",  # only routable after re-index 2
]
EXTRA_ROUTES = [
    (
        "dining",
        [
            "book a table at an italian restaurant",
            "reserve dinner for two tonight",
            "find me a restaurant for a team dinner",
            "make a lunch reservation for friday",
        ],
    ),
    (
        "travel",
        [
            "plan a hiking trip in the mountains",
            "find a weekend getaway in the alps",
            "what should I pack for a hiking weekend",
            "book a cabin for a trip in the mountains",
        ],
    ),
]


@dataclass
class LoadResult:
    """What the load test saw."""

    clients: int
    duration_s: float
    requests: int = 0
    errors: int = 0
    mixed: int = 0
    unknown_versions: int = 0
    throughput_rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    versions_seen: dict[str, int] = field(default_factory=dict)
    versions_published: list[str] = field(default_factory=list)
    reindex_seconds: list[float] = field(default_factory=list)
    switch_seconds: list[float] = field(default_factory=list)
    admin_examples: int = 0
    admin_reindex_seconds: list[float] = field(default_factory=list)
    during_admin_requests: int = 0
    during_admin_p50_ms: float = 0.0
    during_admin_p99_ms: float = 0.0
    during_admin_max_ms: float = 0.0
    peak_rss_mb: float = 0.0  # of the one serving process, or the largest of the workers
    workers: int = 1  # serving processes (ROUTER_HTTP__WORKERS)
    commit: str = ""
    error_samples: list[str] = field(default_factory=list)


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _serving(pid: int) -> list[int]:
    """The serving processes: the service, or its workers when it supervises some."""
    try:
        children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        children = []
    return children or [pid]


def _reindex(env: dict[str, str]) -> tuple[str, float]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "indexer", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"re-index failed: {proc.stderr}")
    version = next(line.split()[1].rstrip(":") for line in proc.stdout.splitlines() if line.startswith("version "))
    return version, time.perf_counter() - started


async def _client(
    http: httpx.AsyncClient,
    stop_at: float,
    i: int,
    res: LoadResult,
    latencies: list[float],
    answers: dict[tuple[str, str], str],
    spans: list[tuple[float, float]],
) -> None:
    n = i
    while time.monotonic() < stop_at:
        query = QUERIES[n % len(QUERIES)]
        fresh = n % 2 == 1  # every other query is new: it must be embedded
        if fresh:
            query = f"{query} (client {i}, request {n})"
        n += 1
        t0 = time.perf_counter()
        try:
            resp = await http.post("/v1/classify", json={"query": query})
        except httpx.HTTPError as exc:
            res.errors += 1
            res.error_samples.append(f"{type(exc).__name__}: {exc}")
            continue
        t1 = time.perf_counter()
        latencies.append(t1 - t0)
        spans.append((t0, t1))
        res.requests += 1
        if resp.status_code != 200:
            res.errors += 1
            res.error_samples.append(f"{resp.status_code}: {resp.text[:200]}")
            continue
        body = resp.json()
        version = body["index_version"]
        res.versions_seen[version] = res.versions_seen.get(version, 0) + 1
        if fresh:
            continue
        decided = answers.setdefault((version, query), body["route"])
        if decided != body["route"]:
            res.mixed += 1


async def run(
    clients: int,
    duration: float,
    reindexes: int,
    workdir: Path,
    *,
    admin_reindexes: int = 0,
    admin_examples: int = 2000,
    workers: int | None = None,
) -> LoadResult:
    routes = workdir / "routes"
    shutil.copytree(ROOT / "routes", routes)
    port = 18000 + os.getpid() % 1000
    env = {
        **os.environ,
        "ROUTER_ROUTES_DIR": str(routes),
        "ROUTER_INDEX__DATA_DIR": str(workdir / "data"),
        "ROUTER_HTTP__PORT": str(port),
        "ROUTER_RELOAD_INTERVAL_S": "0.5",
        "ROUTER_LOG__LEVEL": "WARNING",
    }
    res = LoadResult(clients, duration, admin_examples=admin_examples if admin_reindexes else 0, commit=_commit())
    first, _ = await asyncio.to_thread(_reindex, env)
    if workers is not None:
        env["ROUTER_HTTP__WORKERS"] = str(workers)
        res.workers = workers
    res.versions_published.append(first)
    service = subprocess.Popen(
        [sys.executable, "-m", "service"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    spans: list[tuple[float, float]] = []
    windows: list[tuple[float, float]] = []
    answers: dict[tuple[str, str], str] = {}
    # CLI re-indexes and admin re-indexes alternate, evenly spaced through the run.
    events = ["cli"] * reindexes + ["admin"] * admin_reindexes
    events = [e for pair in itertools.zip_longest(events[:reindexes], events[reindexes:]) for e in pair if e]
    try:
        async with httpx.AsyncClient(
            base_url=base, timeout=300, limits=httpx.Limits(max_connections=clients + 4)
        ) as http:
            await _wait_ready(http, service)
            stop_at = time.monotonic() + duration
            started = time.perf_counter()
            tasks = [
                asyncio.create_task(_client(http, stop_at, i, res, latencies, answers, spans)) for i in range(clients)
            ]
            for k, kind in enumerate(events):
                gap = duration / (len(events) + 1)
                await asyncio.sleep(max(0.0, (k + 1) * gap - (time.perf_counter() - started)))
                if kind == "cli":
                    version = await _cli_reindex(routes, env, sum(1 for e in events[:k] if e == "cli"), res)
                else:
                    version = await _admin_reindex(http, routes, k, admin_examples, res, windows)
                res.versions_published.append(version)
                t_switch = time.perf_counter()
                while res.versions_seen.get(version, 0) == 0 and time.monotonic() < stop_at:
                    await asyncio.sleep(0.05)
                res.switch_seconds.append(round(time.perf_counter() - t_switch, 2))
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - started
    finally:
        res.peak_rss_mb = round(max(_peak_rss_mb(pid) for pid in _serving(service.pid)), 1)
        stop_process(service, 30)
    res.unknown_versions = sum(c for v, c in res.versions_seen.items() if v not in res.versions_published)
    res.throughput_rps = round(res.requests / elapsed, 1)
    res.p50_ms, res.p99_ms, res.max_ms = _percentiles(latencies)
    during = [t1 - t0 for t0, t1 in spans if any(t0 < w1 and t1 > w0 for w0, w1 in windows)]
    res.during_admin_requests = len(during)
    res.during_admin_p50_ms, res.during_admin_p99_ms, res.during_admin_max_ms = _percentiles(during)
    res.error_samples = res.error_samples[:5]
    return res


def _commit() -> str:
    """The code measured: its commit, marked when the working tree has changes."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


async def _cli_reindex(routes: Path, env: dict[str, str], n: int, res: LoadResult) -> str:
    """Add a small route and run `python -m indexer`; the version it published."""
    name, examples = EXTRA_ROUTES[n % len(EXTRA_ROUTES)]
    add_route(routes, f"{name}{n // len(EXTRA_ROUTES) or ''}", examples)
    version, seconds = await asyncio.to_thread(_reindex, env)
    res.reindex_seconds.append(round(seconds, 2))
    return version


async def _admin_reindex(
    http: httpx.AsyncClient, routes: Path, k: int, examples: int, res: LoadResult, windows: list[tuple[float, float]]
) -> str:
    """Add a route of `examples` new examples and re-index through the service; its version."""
    add_route(routes, f"bulk{k}", [f"bulk request {k}-{j} about warehouse pallet {j}" for j in range(examples)])
    t0 = time.perf_counter()
    reply = await http.post("/admin/reindex")
    windows.append((t0, time.perf_counter()))
    if reply.status_code != 200:
        raise RuntimeError(f"admin re-index failed: {reply.status_code} {reply.text[:300]}")
    res.admin_reindex_seconds.append(round(windows[-1][1] - t0, 2))
    return str(reply.json()["version"])


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max in milliseconds (zeros when empty)."""
    if not values:
        return 0.0, 0.0, 0.0
    return (
        round(percentile(values, 50) * 1e3, 2),
        round(percentile(values, 99) * 1e3, 2),
        round(max(values) * 1e3, 2),
    )


def render(res: LoadResult, command: str, baseline: dict[str, Any] | None = None) -> str:
    """Markdown section for BENCHMARKS.md; `baseline`: the JSON of a run of earlier code, whose
    admin re-index figures are shown beside these."""
    lines = [
        "<!-- loadtest:start -->",
        "## Load test: classify under live re-index",
        "",
        f"Command: `{command}` (service and re-index job as separate processes, embedded index, loopback; "
        "half of the queries repeat, half are new and must be embedded).",
        "",
        "| clients | duration | requests | errors | mixed answers | unknown versions | throughput "
        "| p50 | p99 | max | serving processes | peak RSS (per process) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {res.clients} | {res.duration_s:.0f} s | {res.requests} | {res.errors} | {res.mixed} "
        f"| {res.unknown_versions} | {res.throughput_rps} req/s | {res.p50_ms} ms | {res.p99_ms} ms "
        f"| {res.max_ms} ms | {res.workers} | {res.peak_rss_mb} MB |",
        "",
    ]
    if res.reindex_seconds:
        lines.append(
            f"CLI re-indexes during the run: {len(res.reindex_seconds)} (process wall time incl. model load: "
            f"{', '.join(f'{s} s' for s in res.reindex_seconds)})."
        )
    if res.admin_reindex_seconds:
        lines += [
            f"Admin re-indexes (`POST /admin/reindex`, each adding a route of {res.admin_examples} new examples, "
            f"embedded by the service's own model): {len(res.admin_reindex_seconds)}, taking "
            f"{', '.join(f'{s} s' for s in res.admin_reindex_seconds)}. Classify requests overlapping them: "
            f"{res.during_admin_requests}, p50 {res.during_admin_p50_ms} ms, **p99 {res.during_admin_p99_ms} ms**, "
            f"max {res.during_admin_max_ms} ms.",
        ]
        if baseline and baseline.get("admin_reindex_seconds"):
            before = str(baseline.get("commit", "earlier")).split("+")[0]
            lines.append(
                f"Before (the service of commit `{before}`, measured with "
                "this load test and the same command; its admin re-index encoded everything in one call under the "
                "model's lock): classify requests overlapping the admin re-indexes "
                f"{baseline['during_admin_requests']}, p50 {baseline['during_admin_p50_ms']} ms, "
                f"**p99 {baseline['during_admin_p99_ms']} ms**, max {baseline['during_admin_max_ms']} ms "
                f"(re-indexes {', '.join(f'{s} s' for s in baseline['admin_reindex_seconds'])})."
            )
    lines += [
        "The service answered from each new version "
        f"{', '.join(f'{s} s' for s in res.switch_seconds)} after its re-index finished.",
        "Responses per version: " + ", ".join(f"`{v}` {c}" for v, c in res.versions_seen.items()) + ".",
        "<!-- loadtest:end -->",
    ]
    return "\n".join(lines)


async def _wait_ready(http: httpx.AsyncClient, service: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Until /readyz answers 200; the service's stderr in the error when it exits or never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if service.poll() is not None or time.monotonic() > deadline:
            err = service.stderr.read().decode() if service.stderr else ""
            raise RuntimeError(f"service did not start: {err}")
        await asyncio.sleep(0.25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--reindexes", type=int, default=2, help="re-indexes by the CLI job")
    parser.add_argument("--admin-reindexes", type=int, default=2, help="re-indexes through POST /admin/reindex")
    parser.add_argument("--admin-examples", type=int, default=2000, help="new examples per admin re-index")
    parser.add_argument("--write", action="store_true", help="record the figures in BENCHMARKS.md")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--baseline", type=Path, help="JSON of a run of earlier code, shown beside this one")
    parser.add_argument("--workers", type=int, default=None, help="ROUTER_HTTP__WORKERS (default: unset)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="router-load-") as tmp:
        res = asyncio.run(
            run(
                args.clients,
                args.duration,
                args.reindexes,
                Path(tmp),
                admin_reindexes=args.admin_reindexes,
                admin_examples=args.admin_examples,
                workers=args.workers,
            )
        )
    print(json.dumps(asdict(res), indent=2))
    every_version = len(res.versions_seen) == args.reindexes + args.admin_reindexes + 1
    ok = res.errors == 0 and res.mixed == 0 and res.unknown_versions == 0 and every_version
    print(
        "PASS" if ok else "FAIL",
        f": {res.requests} requests, {res.errors} errors, {res.mixed} mixed, "
        f"p50 {res.p50_ms} ms, p99 {res.p99_ms} ms, during admin re-indexes p99 {res.during_admin_p99_ms} ms, "
        f"peak RSS {res.peak_rss_mb} MB",
    )
    if args.json:
        args.json.write_text(json.dumps(asdict(res), indent=2))
    if args.write:
        cmd = (
            f".venv/bin/python -m bench.loadtest --clients {args.clients} "
            f"--duration {args.duration:.0f} --reindexes {args.reindexes} "
            f"--admin-reindexes {args.admin_reindexes} --admin-examples {args.admin_examples}"
            + (f" --workers {args.workers}" if args.workers is not None else "")
            + (" --baseline <JSON of a run of the code before>" if args.baseline else "")
            + " --write"
        )
        baseline = json.loads(args.baseline.read_text()) if args.baseline else None
        write_section(ROOT / "BENCHMARKS.md", "loadtest", render(res, cmd, baseline))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
