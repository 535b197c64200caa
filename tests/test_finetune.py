"""Fine-tuning: batches without in-batch false negatives, a versioned model the index records."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from indexer.cli import main as indexer_main
from indexer.finetune import FinetuneConfig, batches_of, model_id_for, training_pairs
from router_core import load_embedder, load_routes
from router_core.store import EdgeStore
from tests.cli_paste import paste, printed_commands
from tests.test_evaluation import write_tiny_routes


def test_batches_hold_one_pair_per_route(tmp_path: Path) -> None:
    """Every example is an anchor once, its positive is from the same route, and no batch repeats a route."""
    table = load_routes(write_tiny_routes(tmp_path / "routes"))
    rng = np.random.default_rng(0)
    pairs = training_pairs(table, rng)
    assert len(pairs) == 18
    owner = {e: r.name for r in table.routes for e in r.examples}
    assert all(owner[a] == owner[p] == route and a != p for a, p, route in pairs)
    batches = batches_of(pairs, 2, rng)
    assert all(len({route for _, _, route in b}) == len(b) == 2 for b in batches)
    assert sum(len(b) for b in batches) == 18


def test_model_id_follows_base_examples_and_settings(tmp_path: Path) -> None:
    """The model id changes with the examples or settings and is stable otherwise."""
    routes = write_tiny_routes(tmp_path / "routes")
    table = load_routes(routes)
    first = model_id_for("sentence-transformers/all-MiniLM-L6-v2", table, FinetuneConfig())
    assert first.startswith("all-MiniLM-L6-v2-ft-")
    assert len(first) == len("all-MiniLM-L6-v2-ft-") + 8
    assert first == model_id_for("sentence-transformers/all-MiniLM-L6-v2", table, FinetuneConfig())
    assert first != model_id_for("sentence-transformers/all-MiniLM-L6-v2", table, FinetuneConfig(epochs=2))
    other = write_tiny_routes(tmp_path / "other", {"a": ["one", "two"], "b": ["three", "four"]})
    assert first != model_id_for("sentence-transformers/all-MiniLM-L6-v2", load_routes(other), FinetuneConfig())


@pytest.mark.slow
def test_finetune_writes_a_model_the_index_records(tmp_path: Path) -> None:
    """`finetune` trains a few steps on CPU, writes router-model.json, loads by id, and the re-index it
    prints (pasted as is) records that id."""
    routes = write_tiny_routes(tmp_path / "routes")
    out_dir = tmp_path / "models" / "tuned"
    out = io.StringIO()
    args = [
        "finetune",
        "--routes",
        str(routes),
        "--data-dir",
        str(tmp_path / "data"),
        "--quiet",
        "--batch-size",
        "3",
        "--max-steps",
        "2",
        "--out",
        str(out_dir),
    ]
    assert indexer_main(args, out=out) == 0
    marker = json.loads((out_dir / "router-model.json").read_text())
    assert marker["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert marker["model_id"].startswith("all-MiniLM-L6-v2-ft-")
    assert marker["examples"] == 18
    assert marker["epochs"] == 1
    assert marker["steps"] == 2
    assert marker["pairs"] == 6  # the pairs trained on: 2 steps of 3, not the whole epoch
    assert marker["created_at"]
    [hint] = printed_commands(out.getvalue())
    assert f"--model {out_dir}" in hint and f"--data-dir {tmp_path / 'data'}" in hint

    tuned = load_embedder(str(out_dir), cache_dir=tmp_path / "data" / "models" / "derived")
    assert tuned.model_id == marker["model_id"]
    assert tuned.dimension == 384
    vectors = tuned.encode_queries(["will it rain tomorrow"])
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)
    assert paste(hint + " --quiet", embedder=tuned) == 0
    store = EdgeStore(tmp_path / "data")
    assert store.manifest(store.live_version() or "").model_id == marker["model_id"]

    again = io.StringIO()
    assert indexer_main(args, out=again) == 0
    assert "already exists" in again.getvalue()


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--batch-size", "1"], "batch size must be 2 or more, not 1"),
        (["--batch-size", "0"], "batch size must be 2 or more, not 0"),
        (["--epochs", "0"], "epochs must be 1 or more, not 0"),
        (["--max-steps", "0"], "max steps must be 1 or more, not 0"),
        (["--lr", "-1"], "learning rate must be positive, not -1.0"),
    ],
)
def test_finetune_refuses_settings_that_cannot_train(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], problem: str
) -> None:
    """Settings that would train nothing (or loop for ever) exit 2 naming the setting, before any model loads."""
    routes = write_tiny_routes(tmp_path / "routes")
    args = ["finetune", "--routes", str(routes), "--data-dir", str(tmp_path / "data"), "--quiet"]
    assert indexer_main([*args, *flags], out=io.StringIO()) == 2
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "data" / "models").exists()


def test_finetune_refuses_an_out_directory_holding_something_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out pointing at a non-empty directory exits 2 with the path named, and leaves the directory alone."""
    routes = write_tiny_routes(tmp_path / "routes")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    args = ["finetune", "--routes", str(routes), "--data-dir", str(tmp_path / "data"), "--quiet", "--out", str(busy)]
    assert indexer_main(args, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert str(busy) in err and "holds something else" in err
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
