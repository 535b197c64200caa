"""Incremental re-index: change one route's examples, then publish a new version.

Measured twice: in process with the model already loaded (load_routes + run_reindex), and as
the operator runs it, `python -m indexer` in a fresh process (interpreter start, imports and
model load included; the model load is reported separately).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from router_core import ROUTER_FILE, Embedder, IndexStore, load_routes, run_reindex

REPO = Path(__file__).resolve().parents[1]


def edit_route(routes_dir: Path, position: int, tag: str) -> str:
    """Replace one example of the `position`-th route file and add a new one; return its name."""
    files = sorted(p for p in routes_dir.glob("*.yaml") if p.name != ROUTER_FILE)
    path = files[position % len(files)]
    text = path.read_text(encoding="utf-8")
    header = text.splitlines(keepends=True)[0] if text.startswith("#") else ""
    data = yaml.safe_load(text)
    examples: list[str] = data["examples"]
    examples[-1] = f"{examples[-1]} ({tag})"
    examples.append(f"{examples[0]} ({tag}, new)")
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
    path.write_text(header + body, encoding="utf-8")
    return str(data["name"])


def reindex_in_process(routes_dir: Path, store: IndexStore, embedder: Embedder, tag: str) -> dict[str, Any]:
    """Edit one route, then time load_routes and run_reindex with the loaded model."""
    route = edit_route(routes_dir, 0, tag)
    t0 = time.perf_counter()
    table = load_routes(routes_dir)
    t1 = time.perf_counter()
    report = run_reindex(table, store, embedder)
    t2 = time.perf_counter()
    return {
        "route": route,
        "load_routes_s": round(t1 - t0, 3),
        "run_reindex_s": round(t2 - t1, 3),
        "total_s": round(t2 - t0, 3),
        "examples": report.examples,
        "embedded": report.embedded,
        "reused": report.reused,
        "changed": report.changed,
    }


def reindex_cli(routes_dir: Path, data_dir: Path, tag: str, *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Edit another route, then time `python -m indexer` end to end in a fresh process (`env`
    chooses the model and backend; the default settings otherwise)."""
    route = edit_route(routes_dir, 1, tag)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    command = [
        sys.executable,
        "-m",
        "indexer",
        "--routes",
        str(routes_dir),
        "--data-dir",
        str(data_dir),
        "--quiet",
    ]
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"python -m indexer failed ({done.returncode}): {done.stderr[-2000:]}")
    loaded = re.search(r"loaded in ([\d.]+) s", done.stdout)
    index = re.search(r"index time ([\d.]+) s", done.stdout)
    embedded = re.search(r"embedded (\d+), reused (\d+)", done.stdout)
    backend = re.search(r"\) on ([\w-]+), loaded", done.stdout)
    return {
        "route": route,
        "backend": backend.group(1) if backend else None,
        "command": "python -m indexer --routes <routes> --data-dir <data> --quiet",
        "wall_s": round(wall, 3),
        "routes_and_model_load_s": float(loaded.group(1)) if loaded else None,
        "index_s": float(index.group(1)) if index else None,
        "embedded": int(embedded.group(1)) if embedded else None,
        "reused": int(embedded.group(2)) if embedded else None,
    }
