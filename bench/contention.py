"""Latency with a CPU-heavy neighbour process running, against the same measure without it.

`neighbour()` starts `python -m bench.neighbour` (torch, 2 threads, encoding in a loop), waits
until it is busy, yields, and stops it. Timing is done by the caller, twice with the same
queries: idle, then beside the neighbour.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import latency_summary, ratio
from devkit.processes import stop_process

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Timed:
    """What a probe returns when it measured itself (in another process, say): that time is
    used instead of the time around the call."""

    seconds: float


@contextlib.contextmanager
def neighbour(texts: Sequence[str], work: Path, *, settle_s: float = 2.0) -> Iterator[None]:
    """A CPU-heavy process running for the duration of the block."""
    path = work / "neighbour-texts.json"
    path.write_text(json.dumps(list(texts)), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.neighbour", str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the neighbour process did not start (exit {proc.poll()})")
        time.sleep(settle_s)
        yield
    finally:
        stop_process(proc, 30)


def interleaved(
    probes: Mapping[str, Callable[[str], object]], queries: Sequence[str], warmup: int = 5
) -> dict[str, Any]:
    """p50/p99 of each probe over `queries`, the order rotating per query so a burst of load
    from elsewhere hits every probe alike. A probe returning `Timed` reports its own time."""
    names = list(probes)
    for q in queries[:warmup]:
        for name in names:
            probes[name](f"{q} (warm-up)")
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for i, q in enumerate(queries):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            answer = probes[name](q)
            elapsed = time.perf_counter() - t0
            seconds[name].append(answer.seconds if isinstance(answer, Timed) else elapsed)
    return {name: latency_summary(s) for name, s in seconds.items()}


def idle_and_loaded(
    probes: Mapping[str, Callable[[str], object]], queries: Sequence[str], neighbour_texts: Sequence[str], work: Path
) -> dict[str, Any]:
    """Each probe's latency idle and beside the neighbour, and the p50 / p99 ratios. The two runs
    send the same queries marked apart (the service caches vectors of texts it has seen)."""
    idle = interleaved(probes, [f"{q} (1)" for q in queries])
    with neighbour(neighbour_texts, work):
        loaded = interleaved(probes, [f"{q} (2)" for q in queries])
    return {
        name: {
            "idle": idle[name],
            "neighbour": loaded[name],
            "p50_ratio": ratio(loaded[name].get("p50_ms", 0), idle[name].get("p50_ms", 0)),
            "p99_ratio": ratio(loaded[name].get("p99_ms", 0), idle[name].get("p99_ms", 0)),
        }
        for name in probes
    }
