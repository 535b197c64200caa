"""Single-query latency: bare encode, in-process classify and classify over HTTP, interleaved.

Each query is measured once on each path, in an order that rotates per query, so a burst of
load from elsewhere on the machine hits the three paths alike and their ratio stays fair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx

from bench.contention import interleaved
from bench.stats import ratio
from router_core import classify_texts
from service.services import Services

WARMUP = 10


def classify_over_http(client: httpx.Client, query: str) -> dict[str, Any]:
    """POST /v1/classify; raise on anything but 200."""
    response = client.post("/v1/classify", json={"query": query})
    if response.status_code != 200:
        raise RuntimeError(f"classify answered {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


def classify_in_process(runtime: Services, query: str) -> None:
    """Embed, search and decide one query on the served index version, without HTTP."""
    with runtime.routes.follower.lease() as served:
        classify_texts(served.embedder, served.index, [query])


def interleaved_latency(runtime: Services, client: httpx.Client, queries: Sequence[str]) -> dict[str, Any]:
    """p50/p99 per path over `queries`, and each path's p50 as a multiple of the bare encode."""
    probes: dict[str, Callable[[str], object]] = {
        "bare_encode": lambda q: runtime.embedder.encode([q]),
        "in_process": lambda q: classify_in_process(runtime, q),
        "http": lambda q: classify_over_http(client, q),
    }
    # warm-up texts of their own: the service caches the vectors of texts it saw
    result = interleaved(probes, queries, warmup=WARMUP)
    bare = result["bare_encode"]
    for name in ("in_process", "http"):
        result[name]["p50_vs_bare_encode"] = ratio(result[name]["p50_ms"], bare["p50_ms"])
        result[name]["p99_vs_bare_encode"] = ratio(result[name]["p99_ms"], bare["p99_ms"])
    return result
