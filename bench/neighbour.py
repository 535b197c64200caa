"""`python -m bench.neighbour TEXTS.json`: a CPU-heavy neighbour process for the contention runs.

The default model on torch with 2 threads, encoding batches of 64 texts in a loop until killed:
the kind of process (another service, a re-index, a test run) that shares a small machine.
Prints "ready" once it is loaded and busy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from router_core import load_embedder


def main() -> int:
    texts = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    embedder = load_embedder(backend="torch", threads=2)
    embedder.encode_documents(texts[:64])
    print("ready", flush=True)
    i = 0
    while True:
        embedder.encode_documents(texts[i : i + 64], batch_size=64)
        i = (i + 64) % max(1, len(texts) - 64)


if __name__ == "__main__":
    raise SystemExit(main())
