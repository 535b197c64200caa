"""Embedded search at 15,000 examples: Qdrant Edge (the embedded default) against qdrant-client's
local mode (the same engine API the server path uses), on the same points, in one process.

    .venv/bin/python -m bench.search [--points 15000] [--queries 300] [--k 20]

The points are seeded random unit vectors of the model's dimension (384) spread over 150
routes: exact search costs the same whatever the vectors mean, and no model or dataset is
needed. Prints p50 / p99 per single-query search and the ratio of the two engines.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient

from bench.stats import latency_summary, ratio
from router_core import IndexStore
from router_core.manifest import ExamplePoint, IndexManifest
from router_core.store import EdgeStore, QdrantStore

DIMENSION = 384
ROUTES = 150


def synthetic(points: int, seed: int = 7) -> tuple[IndexManifest, list[ExamplePoint], np.ndarray]:
    """A version of `points` unit vectors in ROUTES routes, with a valid route table."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((points, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    routes = [f"r{i:03d}" for i in range(ROUTES)]
    examples = [
        ExamplePoint(f"00000000-0000-0000-0000-{i:012d}", routes[i % ROUTES], f"example {i}") for i in range(points)
    ]
    table = {
        "name": "search-bench",
        "k": 5,
        "threshold": 0.4,
        "default_route": "default",
        "default_agent": {"kind": "canned", "name": "default", "reply": "-"},
        "routes": [
            {
                "name": r,
                "description": r,
                "threshold": None,
                "examples": points // ROUTES,
                "agent": {"kind": "canned", "name": r, "reply": r},
            }
            for r in routes
        ],
    }
    manifest = IndexManifest("v-search-bench", "2026-01-01T00:00:00+00:00", "synthetic", DIMENSION, "fp", points, table)
    return manifest, examples, vectors


def time_searches(store: IndexStore, version: str, queries: np.ndarray, k: int) -> dict[str, Any]:
    """Single-query search latency over an opened version (after 20 warm-up searches)."""
    index = store.open_version(version)
    try:
        for q in queries[:20]:
            index.searcher.search(q[None, :], k)
        seconds = []
        for q in queries:
            t0 = time.perf_counter()
            hits = index.searcher.search(q[None, :], k)
            seconds.append(time.perf_counter() - t0)
            assert len(hits[0]) == k
    finally:
        index.close()
    return latency_summary(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=15_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args(argv)
    manifest, examples, vectors = synthetic(args.points)
    queries = np.random.default_rng(11).standard_normal((args.queries, DIMENSION)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    results: dict[str, Any] = {"points": args.points, "k": args.k, "queries": args.queries}
    with tempfile.TemporaryDirectory(prefix="router-search-") as tmp:
        stores: dict[str, IndexStore] = {
            "qdrant_edge_exact": EdgeStore(Path(tmp) / "edge"),
            "qdrant_client_local": QdrantStore(QdrantClient(path=str(Path(tmp) / "local"))),
        }
        for name, store in stores.items():
            t0 = time.perf_counter()
            store.write_version(manifest, examples, vectors)
            build_s = time.perf_counter() - t0
            results[name] = {"build_s": round(build_s, 2), **time_searches(store, manifest.version, queries, args.k)}
            store.close()
    edge, local = results["qdrant_edge_exact"], results["qdrant_client_local"]
    results["edge_vs_local_p50"] = ratio(edge["p50_ms"], local["p50_ms"])
    print(json.dumps(results, indent=1))
    print(
        f"search over {args.points} points, k={args.k}, one query at a time: "
        f"Qdrant Edge exact p50 {edge['p50_ms']:.2f} ms / p99 {edge['p99_ms']:.2f} ms; "
        f"qdrant-client local p50 {local['p50_ms']:.2f} ms / p99 {local['p99_ms']:.2f} ms "
        f"(Edge takes {results['edge_vs_local_p50']}x the local mode's p50)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
