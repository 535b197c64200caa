"""A full index build, against the bare encode throughput of the same texts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from router_core import Embedder, IndexStore, RouteTable, run_reindex
from router_core.manifest import example_points

WARMUP_TEXTS = 128


def index_build(
    embedder: Embedder, table: RouteTable, store: IndexStore, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Seconds of a full index build of every example, and of a bare encode of the same texts.

    The bare encode runs before and after the build and the faster run is the reference, so
    a burst of load from elsewhere cannot flatter the build.
    """
    say = log or (lambda _message: None)
    texts = [p.text for p in example_points(table)]
    embedder.encode_documents(texts[:WARMUP_TEXTS])

    def bare_encode() -> float:
        t0 = time.perf_counter()
        embedder.encode_documents(texts)
        return time.perf_counter() - t0

    before = bare_encode()
    say(f"bare encode of {len(texts)} examples: {before:.1f} s")
    t0 = time.perf_counter()
    report = run_reindex(table, store, embedder)
    build = time.perf_counter() - t0
    say(f"index build of {report.examples} examples: {build:.1f} s")
    after = bare_encode()
    say(f"bare encode again: {after:.1f} s")
    bare = min(before, after)
    return {
        "examples": len(texts),
        "routes": len(table.routes),
        "bare_encode_runs_s": [round(before, 3), round(after, 3)],
        "bare_encode_s": round(bare, 3),
        "bare_encode_per_s": round(len(texts) / bare, 1),
        "build_s": round(build, 3),
        "examples_per_s": round(report.examples / build, 1),
        "vs_bare_encode": round((report.examples / build) / (len(texts) / bare), 3),
        "embedded": report.embedded,
    }
