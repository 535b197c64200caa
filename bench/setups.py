"""The embedding setups measured side by side: today's path, the default, the quality model.

Each is a model, a backend and a thread count, loaded with the same loader the service uses.
Model load is timed twice: in this process (the first use converts the model for its backend,
once, into the run's data directory), and in a fresh process from that cache, as a restarting
service or the indexer command pays it (interpreter start and imports included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from router_core import Embedder, load_embedder
from router_core.embedding import DEFAULT_MODEL, MPNET_NAME

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Setup:
    """One model on one backend."""

    key: str
    label: str
    model: str
    backend: str
    threads: int = 0  # 0: the loader's automatic choice

    def describe(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


TODAY = Setup("today", "MiniLM, torch 2 threads (before)", DEFAULT_MODEL, "torch", 2)
DEFAULT = Setup("default", "MiniLM, ONNX Runtime (default)", DEFAULT_MODEL, "onnx")
QUALITY = Setup("quality", "all-mpnet-base-v2, ONNX Runtime", MPNET_NAME, "onnx")
INT8 = Setup("int8", "MiniLM, ONNX Runtime int8 (approximate, opt-in)", DEFAULT_MODEL, "onnx-int8")


def load_setup(setup: Setup, cache_dir: Path) -> tuple[Embedder, dict[str, Any]]:
    """Load in this process; the time includes converting the model on first use."""
    t0 = time.perf_counter()
    embedder = load_embedder(setup.model, backend=setup.backend, threads=setup.threads, cache_dir=cache_dir)
    facts = {
        **setup.describe(),
        "id": embedder.model_id,
        "dimension": embedder.dimension,
        "threads_used": getattr(embedder, "threads", setup.threads),
        "load_s": round(time.perf_counter() - t0, 3),
        "conversions": conversions(cache_dir, embedder.model_id),
    }
    return embedder, facts


def conversions(cache_dir: Path, model_id: str) -> dict[str, float]:
    """Seconds each cached conversion of the model took when it was built."""
    slug = model_id.rstrip("/").rsplit("/", 1)[-1]
    out: dict[str, float] = {}
    for marker in sorted(cache_dir.glob(f"{slug}-*/*/derived.json")):
        out[marker.parent.name] = json.loads(marker.read_text(encoding="utf-8")).get("build_s", 0.0)
    return out


_PROBE = """
import json, sys, time
t0 = time.perf_counter()
from router_core import load_embedder
from pathlib import Path
t1 = time.perf_counter()
e = load_embedder(sys.argv[1], backend=sys.argv[2], threads=int(sys.argv[3]), cache_dir=Path(sys.argv[4]))
t2 = time.perf_counter()
e.encode_queries(["how do I reset my password"])
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_query_s": t3 - t2}))
"""


def fresh_process_load(setup: Setup, cache_dir: Path, rounds: int = 2) -> dict[str, Any]:
    """Best of `rounds` fresh processes: wall time from interpreter start to the first query
    answered, and the loader's part of it (the conversion is already cached)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    runs = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, setup.model, setup.backend, str(setup.threads), str(cache_dir)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"loading {setup.key} in a fresh process failed: {done.stderr[-2000:]}")
        inner = json.loads(done.stdout.strip().splitlines()[-1])
        runs.append({"wall_s": round(wall, 3), **{k: round(v, 3) for k, v in inner.items()}})
    best = min(runs, key=lambda r: r["wall_s"])
    return {**best, "runs": runs}
