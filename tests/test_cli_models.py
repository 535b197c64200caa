"""The indexer and the model an index was built with (issue 24): every suggested command names
a model that is not the default, a re-index never switches an index's model unasked, `hygiene`
takes --model as every command does, and `reindex --dry-run` plans without loading a model.
Real model, real embedded index."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from indexer.cli import main as indexer_main
from router_core import Embedder, load_routes, run_reindex
from router_core.embedding import DEFAULT_MODEL, MODEL_ID_FILE
from router_core.store import EdgeStore
from tests.cli_paste import paste, printed_commands
from tests.test_cli import live
from tests.test_evaluation import LABELLED, write_jsonl, write_tiny_routes

DEFAULT_ID = f"sentence-transformers/{DEFAULT_MODEL}"


def model_dir(root: Path, model_id: str) -> Path:
    """A sentence-transformers directory that names its id (router-model.json) and its modules (384-d mean
    pooling) but holds no weights: its dimension can be read, the model cannot load."""
    (root / "1_Pooling").mkdir(parents=True)
    (root / MODEL_ID_FILE).write_text(json.dumps({"model_id": model_id}))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (root / "modules.json").write_text(json.dumps(modules))
    pooling = {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True}
    (root / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return root


@pytest.fixture
def tiny_index(tmp_path: Path, embedder: Embedder) -> tuple[Path, Path]:
    """Tiny routes indexed with the default model into a data directory of their own."""
    routes = write_tiny_routes(tmp_path / "routes")
    data = tmp_path / "data"
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    return routes, data


# -- 3. hints carry the model ------------------------------------------------------------------
@pytest.mark.slow
def test_calibrate_hint_names_a_model_that_is_not_the_default(
    tmp_path: Path, routes_dir: Path, embedder: Embedder
) -> None:
    """After `calibrate --model M --write`, the printed re-index carries `--model M` and runs as pasted; the index
    keeps its model and now holds the written parameters."""
    router = routes_dir / "_router.yaml"
    router.write_text(router.read_text().replace("threshold: 0.36", "threshold: 0.1"))  # something to write
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    same = model_dir(tmp_path / "my-model", DEFAULT_ID)  # named by path: not the default name
    val = Path(__file__).resolve().parents[1] / "evals" / "shipped-val.jsonl"
    out = io.StringIO()
    argv = ["calibrate", str(val), "--routes", str(routes_dir), "--data-dir", str(data), "--model", str(same)]
    assert indexer_main([*argv, "--write", "--quiet"], out=out, embedder=embedder) == 0
    [hint] = printed_commands(out.getvalue().split("next:")[1])
    assert hint.split()[3] == "reindex" and f"--model {same}" in hint
    assert paste(hint + " --quiet", embedder=embedder) == 0
    store = EdgeStore(data)
    index = store.open_version(store.live_version() or "")
    try:
        assert index.manifest.model_id == DEFAULT_ID
        assert index.table.params == load_routes(routes_dir).params
    finally:
        index.close()
        store.close()


def test_import_hints_name_the_configured_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ROUTER_EMBEDDING__MODEL set to another model, every command `import` prints names it; with the default
    configured, none does."""
    source = write_jsonl(tmp_path / "train.jsonl", [(f"{lab} question {i}", lab) for lab in "ab" for i in range(6)])
    argv = ["import", str(source), "--val-share", "0.2"]
    out = io.StringIO()
    assert indexer_main([*argv, "--out", str(tmp_path / "r1"), "--val-out", str(tmp_path / "v1.jsonl")], out=out) == 0
    assert all("--model" not in c for c in printed_commands(out.getvalue()))
    other = model_dir(tmp_path / "other-model", "other/model")
    monkeypatch.setenv("ROUTER_EMBEDDING__MODEL", str(other))
    out = io.StringIO()
    assert indexer_main([*argv, "--out", str(tmp_path / "r2"), "--val-out", str(tmp_path / "v2.jsonl")], out=out) == 0
    commands = printed_commands(out.getvalue())
    assert len(commands) == 4 and all(f"--model {other}" in c for c in commands)


# -- 3. a re-index never switches the model unasked ---------------------------------------------
def test_reindex_refuses_to_switch_the_index_model_unless_asked(
    tmp_path: Path,
    tiny_index: tuple[Path, Path],
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An index built with the default model and another model configured: a plain re-index is refused (exit 2)
    naming both models, --switch-model and a command that keeps the index's model (which runs as pasted); with
    --switch-model or --model the guard lets it through (to load that model); a dry run only notes the refusal."""
    routes, data = tiny_index
    served = live(data)
    other = model_dir(tmp_path / "other-model", "other/model")
    monkeypatch.setenv("ROUTER_EMBEDDING__MODEL", str(other))
    where = ["reindex", "--routes", str(routes), "--data-dir", str(data), "--quiet"]
    assert indexer_main(where, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert f"built with model {DEFAULT_ID!r}" in err and "'other/model'" in err and "--switch-model" in err
    assert "nothing was indexed; the live index is unchanged" in err
    assert live(data) == served
    [keep] = printed_commands(err)
    assert f"--model {DEFAULT_MODEL}" in keep
    out = io.StringIO()
    assert paste(keep + " --quiet", out=out) == 0  # the index's own model: nothing to embed, nothing loaded
    assert "already up to date" in out.getvalue() and "not loaded" in out.getvalue()
    for flag in (["--switch-model"], ["--model", str(other)]):
        assert indexer_main([*where, *flag], out=io.StringIO()) == 1  # past the guard: the model cannot load
        err = capsys.readouterr().err
        assert "cannot load embedding model" in err and "--switch-model" not in err
        assert live(data) == served
    out = io.StringIO()
    assert indexer_main([*where[:-1], "--dry-run"], out=out) == 0
    assert "re-embed everything" in out.getvalue() and "note: a re-index would be refused" in out.getvalue()
    assert live(data) == served


# -- 4. hygiene takes --model --------------------------------------------------------------------
def test_hygiene_takes_model_and_checks_the_index_was_built_with_it(
    tmp_path: Path, tiny_index: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`hygiene --model M` (before or after the command) runs when the index was built with M, and is refused
    (exit 2) naming the index's model otherwise, as eval and calibrate are; it never loads a model."""
    routes, data = tiny_index
    where = ["--routes", str(routes), "--data-dir", str(data)]
    for argv in (["hygiene", *where, "--model", DEFAULT_MODEL], ["--model", DEFAULT_MODEL, "hygiene", *where]):
        out = io.StringIO()
        assert indexer_main(argv, out=out) == 0
        assert f"model {DEFAULT_ID}" in out.getvalue()
    other = model_dir(tmp_path / "other-model", "other/model")
    assert indexer_main(["hygiene", *where, "--model", str(other)], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert f"the live index was built with model {DEFAULT_ID!r}, not 'other/model'" in err
    labelled = write_jsonl(tmp_path / "val.jsonl", LABELLED)
    assert indexer_main(["eval", str(labelled), *where, "--model", str(other)], out=io.StringIO()) == 2
    assert f"the live index was built with model {DEFAULT_ID!r}, not 'other/model'" in capsys.readouterr().err


# -- 6. a dry run loads no model ---------------------------------------------------------------
def test_dry_run_plans_without_loading_a_model(
    tmp_path: Path, tiny_index: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new example to embed: the dry run lists it and says the model was not loaded (the model named cannot load);
    a first index: the plan lists every route, and the conversion cache stays empty (nothing converted)."""
    routes, data = tiny_index
    unloadable = model_dir(tmp_path / "claims-default", DEFAULT_ID)
    music = routes / "music.yaml"
    music.write_text(music.read_text().replace("examples:", 'examples:\n  - "play jazz loud"'))
    out = io.StringIO()
    argv = ["reindex", "--dry-run", "--routes", str(routes), "--data-dir", str(data), "--model", str(unloadable)]
    assert indexer_main(argv, out=out) == 0
    text = out.getvalue()
    assert "+ play jazz loud" in text and "embed 1, reuse 18 of 19 example(s); nothing was written" in text
    assert f"model: {DEFAULT_ID}, not loaded (a dry run)" in text
    cache = tmp_path / "empty-cache"
    monkeypatch.setenv("ROUTER_INDEX__MODELS_DIR", str(cache))
    out = io.StringIO()
    fresh = ["reindex", "--dry-run", "--routes", str(routes), "--data-dir", str(tmp_path / "fresh")]
    assert indexer_main(fresh, out=out) == 0
    assert "dry run: live version none" in out.getvalue() and "embed 19, reuse 0 of 19" in out.getvalue()
    assert "not loaded (a dry run)" in out.getvalue()
    assert not cache.exists()
    assert live(tmp_path / "fresh") is None
