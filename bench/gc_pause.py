"""What the cyclic garbage collector's passes cost a serving process, with the start-up heap
left out of them (`service.startup.freeze_start_up_heap`, what `python -m service` does once
its app is built) and without.

The service's own start-up in this process: the shipped routes indexed into a temporary
directory, `build_services`, `create_app`, served over HTTP on loopback by uvicorn on a thread
(devkit.serving.serve; the collector stops every thread, the event loop's included, so a pass
is a pause of the whole service). Then, in turn: a full pass timed alone (the longest pause a
request can meet, median of 5); REQUESTS classify requests from one client, every query new,
each pass the collector makes meanwhile timed by generation (gc.callbacks), and the requests'
p50, p99 and max. As before and frozen, in alternating blocks in the same process.

    python -m bench.gc_pause [--requests 3000] [--rounds 3] [--write]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.report import write_named_section
from bench.stats import percentile
from devkit.serving import SHIPPED_ROUTES, serve, settings_for
from indexer.labelled import load_labelled
from router_core import load_embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from service.app import create_app
from service.startup import build_services, freeze_start_up_heap

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ROOT / "evals" / "shipped-test.jsonl"


class Passes:
    """Every collector pass while recording: (generation, seconds)."""

    def __init__(self) -> None:
        self.found: list[tuple[int, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.found.append((int(info["generation"]), time.perf_counter() - self._started))

    def summary(self) -> dict[str, Any]:
        """Per generation: the passes, the longest and their total."""
        out: dict[str, Any] = {}
        for gen in (0, 1, 2):
            times = [s for g, s in self.found if g == gen]
            out[f"gen{gen}"] = {
                "passes": len(times),
                "max_ms": round(max(times) * 1e3, 2) if times else None,
                "total_ms": round(sum(times) * 1e3, 1),
            }
        return out


def full_pass_ms() -> float:
    """A full collection, timed alone: the median of 5."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        gc.collect()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1e3, 2)


def block(url: str, queries: Sequence[str], tag: str, passes: Passes, seconds: list[float]) -> None:
    """The requests, each timed, with the collector's passes recorded into `passes`."""
    with httpx.Client(base_url=url, timeout=30) as client:
        gc.callbacks.append(passes)
        try:
            for i, q in enumerate(queries):
                started = time.perf_counter()
                response = client.post("/v1/classify", json={"query": f"{q} ({tag} {i})"})
                seconds.append(time.perf_counter() - started)
                response.raise_for_status()
        finally:
            gc.callbacks.remove(passes)


def measured(passes: Passes, seconds: list[float], alone: float, objects: int) -> dict[str, Any]:
    """One configuration's figures."""
    return {
        "full_pass_alone_ms": alone,
        "objects_tracked": objects,
        "passes": passes.summary(),
        "requests": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1e3, 2),
        "p99_ms": round(percentile(seconds, 99) * 1e3, 2),
        "max_ms": round(max(seconds) * 1e3, 2),
    }


def alternate(url: str, queries: Sequence[str], rounds: int) -> tuple[dict[str, Any], dict[str, Any], int]:
    """`rounds` times: a block of requests with the start-up heap in the collector's passes
    (gc.unfreeze), then one with it frozen (freeze_start_up_heap), so that drift over the run
    falls on both alike. Each configuration gets every query once, tagged apart."""
    state = {key: (Passes(), list[float]()) for key in ("before", "after")}
    size = max(1, len(queries) // rounds)
    alone: dict[str, float] = {}
    objects: dict[str, int] = {}
    frozen = 0
    for r in range(rounds):
        part = queries[r * size : (r + 1) * size]
        gc.unfreeze()
        alone.setdefault("before", full_pass_ms())
        objects.setdefault("before", len(gc.get_objects()))
        block(url, part, f"before {r}", *state["before"])
        frozen = freeze_start_up_heap()
        alone.setdefault("after", full_pass_ms())
        objects.setdefault("after", len(gc.get_objects()))
        block(url, part, f"after {r}", *state["after"])
    before, after = (measured(*state[k], alone[k], objects[k]) for k in ("before", "after"))
    return before, after, frozen


def run(requests: int, rounds: int) -> dict[str, Any]:
    """Index the shipped routes, start the service in this process, measure both ways."""
    texts = [q.text for q in load_labelled(QUERIES)]
    queries = [texts[i % len(texts)] for i in range(requests)]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        run_reindex(load_routes(SHIPPED_ROUTES), EdgeStore(data), load_embedder())
        services = build_services(settings_for(SHIPPED_ROUTES, data))
        assert services is not None
        app = create_app(services=services)
        with serve(app) as url:
            with httpx.Client(base_url=url, timeout=30) as client:  # warm-up: first calls are slower
                for i in range(20):
                    client.post("/v1/classify", json={"query": f"warm-up {i}"}).raise_for_status()
            before, after, frozen = alternate(url, queries, rounds)
    return {"requests": requests, "rounds": rounds, "before": before, "after": after, "frozen_at_freeze": frozen}


def render(result: dict[str, Any], command: str) -> str:
    """The BENCHMARKS.md section."""
    rows = []
    for label, key in (("start-up heap in the passes (before)", "before"), ("start-up heap frozen", "after")):
        r = result[key]
        g = r["passes"]
        rows.append(
            f"| {label} | {r['full_pass_alone_ms']} ms | {r['objects_tracked']:,} | "
            + " | ".join(f"{g[f'gen{n}']['passes']} / {g[f'gen{n}']['max_ms'] or '-'}" for n in (0, 1, 2))
            + f" | {r['p50_ms']} / {r['p99_ms']} / {r['max_ms']} ms |"
        )
    return (
        "## Garbage collector pauses in a serving process\n\n"
        f"Command: `{command}`. The shipped routes served in this process as `python -m service` builds them "
        f"(uvicorn on a thread, one client over loopback), {result['requests']} classify requests per row, every "
        f"query new, in {result['rounds']} alternating blocks of each; the same process with its start-up heap "
        "in the collector's passes (gc.unfreeze) and frozen "
        f"({result['frozen_at_freeze']:,} objects, `service/startup.py`). A collector pass stops every thread.\n\n"
        "| | full pass alone (median of 5) | objects in the passes | gen 0 passes / max ms | gen 1 | gen 2 | "
        "requests p50 / p99 / max |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the figures, and with --write put the section into BENCHMARKS.md."""
    parser = argparse.ArgumentParser(prog="python -m bench.gc_pause", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per configuration (default 3000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two (default 3)")
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = parser.parse_args(argv)
    result = run(args.requests, args.rounds)
    print(json.dumps(result, indent=1))
    if args.write:
        command = f"python -m bench.gc_pause --requests {args.requests} --rounds {args.rounds}"
        write_named_section(ROOT / "BENCHMARKS.md", "gc-pause", render(result, command) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
