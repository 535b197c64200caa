"""How many threads a model gets, so serving never oversubscribes the cores.

A query is a few tokens: its matrices are too small to split, and a second intra-op thread
only adds synchronisation (measured: ONNX Runtime with 2 threads was 2.6x slower per query than
with 1 on 2 cores, and torch with 2 threads had a p99 of 440-590 ms whenever another process
ran). So a small model gets one thread per forward pass; the micro-batch worker runs one pass
at a time and the event loop keeps the other core. A base-size model (hidden size 768 and up,
about 5x the compute per token) gains from two. Bulk encodes (index builds) and large
micro-batches (many concurrent requests) run one pass per core side by side instead.
"""

from __future__ import annotations

import os

LARGE_HIDDEN_SIZE = 768


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def auto_threads(hidden_size: int) -> int:
    """Intra-op threads per forward pass for a model of this width."""
    return 1 if hidden_size < LARGE_HIDDEN_SIZE else min(2, usable_cores())


def bulk_workers(threads: int) -> int:
    """Forward passes run side by side in a bulk encode: one per `threads` usable cores."""
    return max(1, usable_cores() // max(1, threads))
