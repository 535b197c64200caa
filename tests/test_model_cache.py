"""One model conversion cache per machine and user (issue 24): two processes converting the same
model at once convert it once (the other waits, says so, and uses its files), the conversion says
what it does and how long it should take, and what a killed build left behind is removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.processes import stop_process
from router_core.embedding import DEFAULT_MODEL
from router_core.embedding.derived import MARKER, DerivedCache, sha256_file
from router_core.embedding.models import resolve_model
from router_core.store import EdgeStore
from tests.test_evaluation import write_tiny_routes

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_processes_converting_one_model_convert_it_once(tmp_path: Path) -> None:
    """Two `reindex` processes started together on an empty cache: exactly one converts (saying "converting ... to
    ONNX once, ~N s"), the other says it waits for it, both index; one checksummed build remains, and the leftover
    of a killed build is gone."""
    cache = tmp_path / "cache"
    location, model_id = resolve_model(DEFAULT_MODEL)
    folder = DerivedCache(cache).folder(model_id, Path(location))
    leftover = folder / ".onnx.tmp-killed0"  # what a build killed mid-way leaves
    leftover.mkdir(parents=True)
    (leftover / "model.onnx").write_bytes(b"half written")
    routes = write_tiny_routes(tmp_path / "routes")
    env = {**os.environ, "ROUTER_INDEX__MODELS_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "indexer", "reindex", "--routes", str(routes), "--data-dir", str(tmp_path / d)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for d in ("one", "two")
    ]
    try:
        results = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            stop_process(p, timeout=10)
    assert [p.returncode for p in procs] == [0, 0], results
    errs = [err for _, err in results]
    converting = [e for e in errs if f"converting {model_id} to ONNX once, ~" in e]
    assert len(converting) == 1, errs
    assert f"converted {model_id} to ONNX in " in converting[0]
    [other] = [e for e in errs if e is not converting[0]]
    assert f"waiting for another process converting {model_id} to ONNX" in other
    assert "to ONNX once" not in other and f"converted {model_id}" not in other
    for d in ("one", "two"):
        store = EdgeStore(tmp_path / d)
        try:
            assert store.live_version() is not None
        finally:
            store.close()
    assert not leftover.exists()
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == ["onnx"]
    marker = json.loads((folder / "onnx" / MARKER).read_text())
    assert marker["files"] and all(sha256_file(folder / "onnx" / n) == d for n, d in marker["files"].items())
