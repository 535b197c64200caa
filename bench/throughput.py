"""Throughput over HTTP with several concurrent clients, each sending one query at a time.

The load comes from a separate process (`python -m bench.throughput`), so the clients never
share the service's interpreter lock, and through a minimal keep-alive HTTP/1.1 client, so the
load generator takes as little of the machine's CPU as it can: the figures are the service's.
Every response must be 200 with a route in its body, or it counts as an error. Every request's
text is unique (a counter appended), so no answer comes from the service's vector cache.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.stats import latency_summary, ratio
from devkit.processes import run_checked


class _Connection:
    """One keep-alive HTTP/1.1 connection with just enough client to POST JSON.

    A load generator should cost as little CPU as possible on a 2-core machine that also runs
    the service; a full client library spends several times more per request than this.
    """

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode("ascii") + body)
        await self._writer.drain()
        status_line = await self._reader.readline()
        if not status_line:
            await self.close()
            raise ConnectionError("the service closed the connection")
        status = int(status_line.split()[1])
        length, chunked, keep_alive = 0, False, True
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            key = name.strip().lower()
            if key == "content-length":
                length = int(value)
            elif key == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif key == "connection":
                keep_alive = "close" not in value.lower()
        payload = await (self._chunks() if chunked else self._reader.readexactly(length))
        if not keep_alive:
            await self.close()
        return status, payload

    async def _chunks(self) -> bytes:
        assert self._reader is not None
        parts = []
        while size := int((await self._reader.readline()).split(b";")[0], 16):
            parts.append(await self._reader.readexactly(size))
            await self._reader.readline()
        await self._reader.readline()
        return b"".join(parts)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


async def _run_level(
    base_url: str, queries: Sequence[str], clients: int, duration: float, warmup: float
) -> dict[str, Any]:
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    run = os.getpid()  # one load-generator process per measurement: unique across runs too
    window_start = time.perf_counter() + warmup
    deadline = window_start + duration
    latencies: list[float] = []
    errors: list[str] = []

    async def worker(index: int) -> None:
        connection = _Connection(host, port)
        i = index
        try:
            while time.perf_counter() < deadline:
                # Every text unique (a counter appended): the service's vector cache would
                # otherwise answer repeats without embedding, and this measures embedding.
                body = json.dumps({"query": f"{queries[i % len(queries)]} ({run}.{clients}.{i})"}).encode()
                i += clients
                t0 = time.perf_counter()
                try:
                    status, payload = await connection.post("/v1/classify", body)
                except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    # The stream may be out of step with the responses: start a new connection,
                    # after a pause so a dead service is not hammered in a tight loop.
                    await connection.close()
                    await asyncio.sleep(0.05)
                    continue
                t1 = time.perf_counter()
                if status != 200 or b'"route"' not in payload:
                    errors.append(f"HTTP {status}: {payload[:200]!r}")
                elif window_start <= t1 <= deadline:
                    latencies.append(t1 - t0)
        finally:
            await connection.close()

    await asyncio.gather(*(worker(i) for i in range(clients)))
    return {
        "clients": clients,
        "window_s": duration,
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "requests_per_s": round(len(latencies) / duration, 2),
        "latency": latency_summary(latencies),
    }


def _levels(
    base_url: str,
    queries: Sequence[str],
    levels: Sequence[int] = (1, 8, 32),
    *,
    duration: float = 10.0,
    warmup: float = 1.0,
) -> dict[str, Any]:
    """Requests per second completed inside a fixed window at each concurrency level.

    Requests that complete inside the window (after the warm-up) count.
    """
    runs = [asyncio.run(_run_level(base_url, queries, n, duration, warmup)) for n in levels]
    return {"levels": runs}


def http_throughput(
    base_url: str,
    queries: Sequence[str],
    levels: Sequence[int] = (1, 8, 32),
    *,
    duration: float = 10.0,
    warmup: float = 1.0,
    work: Path,
) -> dict[str, Any]:
    """Run the load generator in its own process against `base_url`; add ratios to 1 client."""
    queries_file = work / "load-queries.json"
    queries_file.write_text(json.dumps(list(queries)), encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "bench.throughput",
        base_url,
        str(queries_file),
        "--levels",
        *map(str, levels),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
    ]
    budget = len(levels) * (duration + warmup) + 120
    out = run_checked(command, cwd=Path(__file__).resolve().parents[1], timeout=budget, what="the load generator")
    runs: list[dict[str, Any]] = json.loads(out)["levels"]
    single = next((r["requests_per_s"] for r in runs if r["clients"] == 1), None)
    for r in runs:
        r["vs_single_client"] = ratio(r["requests_per_s"], single) if single else None
    return {"levels": runs}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput", description="HTTP load at fixed concurrency levels."
    )
    parser.add_argument("url", help="base URL of the service")
    parser.add_argument("queries", type=Path, help="JSON list of query strings")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    queries = json.loads(args.queries.read_text(encoding="utf-8"))
    figures = _levels(args.url, queries, args.levels, duration=args.duration, warmup=args.warmup)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
