"""Latency summaries: percentiles in milliseconds, computed the same way for every figure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, interpolated as numpy does; 0 when empty. The
    one percentile every benchmark reports (and the indexer's, through numpy)."""
    if len(values) == 0:
        return 0.0
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, mean, min (milliseconds) and the sample count of `seconds`."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"n": 0}
    return {
        "n": int(ms.size),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "min_ms": round(float(ms.min()), 3),
    }


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator rounded for reports, None when undefined."""
    if not denominator:
        return None
    return round(numerator / denominator, 3)
