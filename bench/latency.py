"""Single-query latency: bare encode, in-process classify and classify over HTTP, interleaved.

Each query is measured once on each path, in an order that rotates per query, so a burst of
load from elsewhere on the machine hits the three paths alike and their ratio stays fair. The
bare encode and the in-process classify run in the setup's own worker process (timed there);
the service is `python -m service` in its own process, timed by a lean keep-alive client here.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from bench.contention import Timed, interleaved
from bench.stats import ratio
from bench.worker import Worker

WARMUP = 10


class ClassifyClient:
    """POST /v1/classify over one keep-alive connection (http.client: a small fraction of a
    millisecond per request, so the figure is the service's)."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)

    def classify(self, query: str) -> dict[str, Any]:
        """The response body; RuntimeError on anything but 200. A connection the service closed
        while idle (its keep-alive time-out) is opened again once."""
        try:
            status, body = self._post(query)
        except ConnectionError:  # http.client.RemoteDisconnected is one
            self._conn.close()
            status, body = self._post(query)
        if status != 200:
            raise RuntimeError(f"classify answered {status}: {body[:300]!r}")
        answer: dict[str, Any] = json.loads(body)
        return answer

    def _post(self, query: str) -> tuple[int, bytes]:
        self._conn.request("POST", "/v1/classify", json.dumps({"query": query}), {"content-type": "application/json"})
        response = self._conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def probes_for(worker: Worker, client: ClassifyClient) -> dict[str, Callable[[str], object]]:
    """The three paths for one setup: its worker must have opened the served index."""
    return {
        "bare_encode": lambda q: Timed(worker.seconds("encode", text=q)),
        "in_process": lambda q: Timed(worker.seconds("classify", text=q)),
        "http": client.classify,
    }


def interleaved_latency(worker: Worker, client: ClassifyClient, queries: Sequence[str]) -> dict[str, Any]:
    """p50/p99 per path over `queries`, and each path's p50 as a multiple of the bare encode."""
    # warm-up texts of their own: the service caches the vectors of texts it saw
    result = interleaved(probes_for(worker, client), queries, warmup=WARMUP)
    bare = result["bare_encode"]
    for name in ("in_process", "http"):
        result[name]["p50_vs_bare_encode"] = ratio(result[name]["p50_ms"], bare["p50_ms"])
        result[name]["p99_vs_bare_encode"] = ratio(result[name]["p99_ms"], bare["p99_ms"])
    return result
