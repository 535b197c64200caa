"""Which parts of a routing pass hold the interpreter lock: a pure-Python loop on the main thread
counts its iterations for a while alone, then beside a thread looping the embedded search
(Qdrant Edge, exact, 16 queries at a time over the index given), then beside a thread looping
the model's encode of 16 queries. A part that releases the lock leaves the loop near its speed
alone (the machine has a core for each); one that holds it slows the loop down.

    python -m bench.gil DATA_DIR [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from router_core import load_embedder
from router_core.store import EdgeStore

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
    store = EdgeStore(args.data_dir)
    version = store.live_version()
    if version is None:
        parser.error(f"no index in {args.data_dir}")
    index = store.open_version(version)
    embedder = load_embedder()
    queries = embedder.encode_queries(TEXTS)
    vectors = np.asarray(queries)
    index.searcher.search(vectors, 5)
    started = time.perf_counter()
    for _ in range(20):
        index.searcher.search(vectors, 5)
    search_alone_ms = (time.perf_counter() - started) / 20 * 1e3
    alone = loop_speed(args.seconds)
    search, searches = beside(lambda: index.searcher.search(vectors, 5), args.seconds)
    encode, encodes = beside(lambda: embedder.encode_queries(TEXTS), args.seconds)
    print(
        json.dumps(
            {
                "examples": index.manifest.points,
                "search_of_16_ms_alone": round(search_alone_ms, 2),
                "loop_alone": alone,
                "beside_search": round(search / alone, 3),
                "searches_of_16": searches,
                "beside_encode": round(encode / alone, 3),
                "encodes_of_16": encodes,
            }
        )
    )
    index.searcher.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
