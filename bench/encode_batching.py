"""Bare encode throughput by batch size: the ceiling that batching concurrent queries can reach.

One forward pass of each size per round, rounds repeated until the time budget is spent, so
load from elsewhere on the machine hits every size alike. Rates come from the median time per
call: on a busy machine any call may stall for a scheduler time slice (hundreds of ms), which
swamps a 20 ms single-query pass in a mean but barely moves a median.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench.stats import ratio
from router_core import Embedder


def encode_by_batch_size(
    embedder: Embedder,
    texts: Sequence[str],
    sizes: Sequence[int] = (1, 8, 32),
    *,
    budget_s: float = 10.0,
) -> dict[str, Any]:
    """Queries per second of `embedder.encode` at each batch size, and each size's gain over 1."""
    calls: dict[int, list[float]] = {size: [] for size in sizes}
    embedder.encode_queries(list(texts[: max(sizes)]))
    offset = 0
    stop = time.perf_counter() + budget_s
    rounds = 0
    while time.perf_counter() < stop or rounds == 0:
        for size in sizes:
            batch = [texts[(offset + j) % len(texts)] for j in range(size)]
            offset += size
            t0 = time.perf_counter()
            embedder.encode_queries(batch)
            calls[size].append(time.perf_counter() - t0)
        rounds += 1
    per_s = {size: size / statistics.median(calls[size]) for size in sizes}
    mean_per_s = {size: size * len(calls[size]) / sum(calls[size]) for size in sizes}
    return {
        "rounds": rounds,
        "levels": [
            {
                "batch": size,
                "queries_per_s": round(per_s[size], 1),
                "median_call_ms": round(statistics.median(calls[size]) * 1e3, 2),
                "queries_per_s_from_mean": round(mean_per_s[size], 1),
                "vs_batch_1": ratio(per_s[size], per_s[sizes[0]]),
            }
            for size in sizes
        ],
    }
