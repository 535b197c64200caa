"""`python -m indexer` with route sets: `--set` on every route command, every set re-indexed on
its own by default, review per set."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from devkit.routes_dirs import add_route
from devkit.serving import SHIPPED_EVALS
from indexer.cli import main as indexer_main
from indexer.finetune import FinetuneConfig, model_id_for
from router_core import Embedder, load_routes
from router_core.decision_log.store import DecisionStore
from router_core.store import EdgeStore
from tests.test_decision_store import record
from tests.test_route_sets import two_sets


def run(args: list[str], embedder: Embedder, capsys: pytest.CaptureFixture[str] | None = None) -> tuple[int, str]:
    out = io.StringIO()
    code = indexer_main(args, out=out, embedder=embedder)
    return code, out.getvalue() + (capsys.readouterr().err if capsys is not None else "")


def live(data: Path, name: str) -> str | None:
    store = EdgeStore(data, f"router-{name}")
    try:
        return store.live_version() if store.root.exists() else None
    finally:
        store.close()


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A routes root of two sets and its index directory, configured as the service's."""
    routes, data = two_sets(tmp_path / "routes"), tmp_path / "data"
    monkeypatch.setenv("ROUTER_ROUTES_DIR", str(routes))
    monkeypatch.setenv("ROUTER_INDEX__DATA_DIR", str(data))
    monkeypatch.setenv("ROUTER_DECISION_LOG__PATH", str(tmp_path / "decisions.sqlite3"))
    return routes, data


def test_reindex_indexes_every_set_on_its_own(
    root: tuple[Path, Path], embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --set every set is indexed into its own collection; --set NAME re-indexes that
    set only; a broken set fails alone (exit 2, named) while the others are indexed."""
    routes, data = root
    code, out = run(["reindex", "--quiet"], embedder)
    assert code == 0 and "route set alpha" in out and "route set beta" in out
    first = {name: live(data, name) for name in ("alpha", "beta")}
    assert all(first.values()) and not (data / "router").exists()
    add_route(routes / "beta", "extra", ["a new beta example", "another beta example"])
    code, out = run(["reindex", "--set", "beta", "--quiet"], embedder)
    assert code == 0 and "route set: beta" in out and "route set alpha" not in out
    assert live(data, "alpha") == first["alpha"] and live(data, "beta") != first["beta"]
    second = live(data, "beta")
    add_route(routes / "alpha", "extra", ["a new alpha example", "another alpha example"])
    (routes / "beta" / "coding.yaml").write_text("name: coding\nexamples: [unclosed\n", encoding="utf-8")
    code, out = run(["reindex", "--quiet"], embedder, capsys)
    assert code == 2 and "1 of 2 route sets not re-indexed (beta)" in out
    assert live(data, "alpha") != first["alpha"] and live(data, "beta") == second


@pytest.mark.slow
def test_route_commands_take_the_set(root: tuple[Path, Path], embedder: Embedder) -> None:
    """eval and hygiene read the named set's index (the default set without --set); an unknown
    set is an error."""
    assert run(["reindex", "--quiet"], embedder)[0] == 0
    test_file = str(SHIPPED_EVALS / "shipped-test.jsonl")
    code, alpha = run(["eval", test_file, "--quiet"], embedder)
    assert code == 0 and "route set: alpha" in alpha
    code, beta = run(["eval", test_file, "--set", "beta", "--quiet"], embedder)
    assert code == 0 and "route set: beta" in beta
    accuracy = [line for line in alpha.splitlines() if line.strip().startswith("accuracy")]
    assert accuracy and accuracy != [line for line in beta.splitlines() if line.strip().startswith("accuracy")]
    code, hygiene = run(["hygiene", "--set", "beta", "--quiet"], embedder)
    assert code == 0 and "route set: beta" in hygiene
    code, calibrated = run(
        ["calibrate", str(SHIPPED_EVALS / "shipped-val.jsonl"), "--set", "beta", "--quiet"], embedder
    )
    assert code == 0 and "route set: beta" in calibrated
    code, _ = run(["hygiene", "--set", "gamma"], embedder)
    assert code == 2


@pytest.mark.slow
def test_calibrate_writes_into_the_named_set_only(root: tuple[Path, Path], embedder: Embedder) -> None:
    """`calibrate --set beta --write` calibrates on beta's index and edits beta's routes only."""
    routes, _ = root
    assert run(["reindex", "--quiet"], embedder)[0] == 0
    alpha = {p.name: p.read_text(encoding="utf-8") for p in (routes / "alpha").iterdir()}
    args = ["calibrate", str(SHIPPED_EVALS / "shipped-val.jsonl"), "--set", "beta", "--write", "--quiet"]
    code, calibrated = run(args, embedder)
    assert code == 0 and "route set: beta" in calibrated
    assert (
        str(routes / "beta") in calibrated and str(routes / "alpha") not in calibrated
    )  # it names what it (would) edit
    assert {p.name: p.read_text(encoding="utf-8") for p in (routes / "alpha").iterdir()} == alpha


def test_a_missing_set_index_suggests_the_command_for_that_set(
    root: tuple[Path, Path], embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    """eval on a set never indexed says how to index that set: with --set, not its folder."""
    routes, _ = root
    code, out = run(["eval", str(SHIPPED_EVALS / "shipped-test.jsonl"), "--set", "beta"], embedder, capsys)
    assert code == 1 and f"-m indexer reindex --routes {routes} --set beta --data-dir" in out


def test_review_works_on_one_set(root: tuple[Path, Path], embedder: Embedder, tmp_path: Path) -> None:
    """`review list --set` shows that set's decisions only; accepting one writes into that set's
    routes folder; another set's decision id is unknown there."""
    routes, _ = root
    assert run(["reindex", "--quiet"], embedder)[0] == 0
    store = DecisionStore.open(f"sqlite:///{tmp_path / 'decisions.sqlite3'}", retention_s=3600)
    now = time.time()
    store.insert_many(
        [
            record("in-beta", now, route_set="beta", route="default", text="the beta query to learn"),
            record("in-alpha", now, route_set="alpha", route="default", text="the alpha query"),
        ]
    )
    by_set = {r.record.route_set: r.id for r in store.queue("recent", 10)}
    store.close()
    code, listed = run(["review", "list", "--queue", "recent", "--set", "beta"], embedder)
    assert code == 0 and "the beta query to learn" in listed and "the alpha query" not in listed
    code, _ = run(["review", "right", str(by_set["alpha"]), "--set", "beta"], embedder)
    assert code == 2
    before = (routes / "alpha" / "coding.yaml").read_text(encoding="utf-8")
    args = ["review", "accept", str(by_set["beta"]), "--route", "coding", "--write", "--set", "beta"]
    code, saved = run([*args, "--evals", str(SHIPPED_EVALS)], embedder)
    assert code == 0 and "saved" in saved and "--set beta" in saved
    assert "the beta query to learn" in (routes / "beta" / "coding.yaml").read_text(encoding="utf-8")
    assert (routes / "alpha" / "coding.yaml").read_text(encoding="utf-8") == before


@pytest.mark.slow
def test_finetune_trains_on_the_named_set(root: tuple[Path, Path], embedder: Embedder, tmp_path: Path) -> None:
    """`finetune --set beta` trains on beta's examples (its model id is the one beta's routes
    give, not alpha's) and its next step re-indexes beta with the model it wrote."""
    routes, _ = root
    out_dir = tmp_path / "tuned"
    args = ["finetune", "--set", "beta", "--quiet", "--batch-size", "3", "--max-steps", "1", "--out", str(out_dir)]
    code, printed = run(args, embedder)
    assert code == 0, printed
    marker = json.loads((out_dir / "router-model.json").read_text(encoding="utf-8"))
    config = FinetuneConfig(batch_size=3, max_steps=1)
    base = "sentence-transformers/all-MiniLM-L6-v2"
    assert marker["model_id"] == model_id_for(base, load_routes(routes / "beta"), config)
    assert marker["model_id"] != model_id_for(base, load_routes(routes / "alpha"), config)
    [hint] = [line.strip() for line in printed.splitlines() if "-m indexer reindex" in line]
    assert "--set beta" in hint and f"--model {out_dir}" in hint, hint
