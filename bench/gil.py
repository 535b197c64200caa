"""Which parts of a routing pass hold the interpreter lock: a pure-Python loop on the main thread
counts its iterations for a while alone, then beside a thread looping the embedded search (16
queries at a time over the index given, by each scan: Qdrant Edge's exact search, "engine", and
the vectors scanned in memory by numpy, "matrix", with one BLAS thread as in the service), then
beside a thread looping the model's encode of 16 queries. A part that releases the lock leaves
the loop near its speed alone (the machine has a core for each); one that holds it slows the
loop down. Also the time of a search of 1 and of 16 queries by each scan, alone.

    python -m bench.gil DATA_DIR [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
from threadpoolctl import threadpool_limits

from router_core import load_embedder
from router_core.store import EdgeStore

SCANS = ("engine", "matrix")
TEXTS = ["how do i set up direct deposit for my paycheck please"] * 16


def loop_speed(seconds: float) -> int:
    """Iterations of a pure-Python loop in `seconds`."""
    n, stop = 0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        n += 1
    return n


def beside(work: Callable[[], object], seconds: float) -> tuple[int, int]:
    """The loop's iterations while `work` runs over and over on another thread, and its calls."""
    done = threading.Event()
    calls = [0]

    def run() -> None:
        while not done.is_set():
            work()
            calls[0] += 1

    thread = threading.Thread(target=run)
    thread.start()
    try:
        return loop_speed(seconds), calls[0]
    finally:
        done.set()
        thread.join()


def main(argv: Sequence[str] | None = None) -> int:
    """Print the loop's speed beside each part, as a share of its speed alone."""
    parser = argparse.ArgumentParser(prog="python -m bench.gil", description=__doc__)
    parser.add_argument("data_dir", help="an embedded index (its live version is searched)")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    threadpool_limits(1, user_api="blas")  # as a serving process (service.startup)
    embedder = load_embedder()
    vectors = np.asarray(embedder.encode_queries(TEXTS))
    alone = loop_speed(args.seconds)
    out: dict[str, object] = {"loop_alone": alone}
    for scan in SCANS:
        store = EdgeStore(args.data_dir, scan=scan)
        version = store.live_version()
        if version is None:
            parser.error(f"no index in {args.data_dir}")
        index = store.open_version(version)
        try:
            out["examples"] = index.manifest.points
            for rows in (1, 16):
                index.searcher.search(vectors[:rows], 5)
                started = time.perf_counter()
                for _ in range(50):
                    index.searcher.search(vectors[:rows], 5)
                out[f"{scan}_search_of_{rows}_ms"] = round((time.perf_counter() - started) / 50 * 1e3, 3)
            loop, searches = beside(partial(index.searcher.search, vectors, 5), args.seconds)
            out[f"beside_{scan}_search"] = round(loop / alone, 3)
            out[f"{scan}_searches_of_16"] = searches
        finally:
            index.close()
    encode, encodes = beside(lambda: embedder.encode_queries(TEXTS), args.seconds)
    out["beside_encode"] = round(encode / alone, 3)
    out["encodes_of_16"] = encodes
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
