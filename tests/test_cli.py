"""The indexer CLI as a new user meets it (issue 16): options mean the same wherever they are
given, suggested commands are safe to paste, the service's index is guarded, the model loads
only when needed and quietly with --quiet, slow steps show progress and the time taken."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from devkit.serving import SHIPPED_ROUTES
from indexer.cli import main as indexer_main
from indexer.labelled import load_labelled
from indexer.progress import Progress
from router_core import Embedder, load_routes, run_reindex
from router_core.embedding import DEFAULT_MODEL, MODEL_ID_FILE
from router_core.store import EdgeStore
from tests.cli_paste import paste, printed_commands
from tests.test_evaluation import LABELLED, write_jsonl, write_tiny_routes


def live(data: Path) -> str | None:
    """The live version of an embedded index directory (None when there is none)."""
    if not data.exists():
        return None
    store = EdgeStore(data)
    try:
        return store.live_version()
    finally:
        store.close()


@pytest.fixture
def service_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The configured (service's) routes directory and index, set in the environment as a deployment would."""
    routes = write_tiny_routes(tmp_path / "service-routes")
    data = tmp_path / "service-data"
    monkeypatch.setenv("ROUTER_ROUTES_DIR", str(routes))
    monkeypatch.setenv("ROUTER_INDEX__DATA_DIR", str(data))
    return routes, data


# -- 1. an option means the same before and after the command --------------------------------
def test_options_before_reindex_are_honoured(
    tmp_path: Path, service_env: tuple[Path, Path], embedder: Embedder
) -> None:
    """`--dry-run reindex` writes nothing; `--routes R --data-dir D reindex` indexes R into D, not the configured ones."""
    routes = write_tiny_routes(tmp_path / "mine", {"a": ["one thing", "another thing"], "b": ["third", "fourth"]})
    data = tmp_path / "mine-data"
    out = io.StringIO()
    assert indexer_main(["--dry-run", "--routes", str(routes), "--data-dir", str(data), "reindex"], out=out) == 0
    assert "dry run" in out.getvalue() and "nothing was written" in out.getvalue()
    assert live(data) is None
    out = io.StringIO()
    args = ["--routes", str(routes), "--data-dir", str(data), "--quiet", "reindex"]
    assert indexer_main(args, out=out, embedder=embedder) == 0
    assert f"valid in {routes}" in out.getvalue()
    version = live(data)
    assert version is not None
    assert live(service_env[1]) is None  # the configured index was not touched
    store = EdgeStore(data)
    assert {p.route for p in store.stored_points(version).points} == {"a", "b"}
    store.close()


def test_options_before_eval_mean_the_same_as_after(tmp_path: Path, embedder: Embedder) -> None:
    """`--routes R --data-dir D eval F` and `eval F --routes R --data-dir D` report the same figures."""
    routes = write_tiny_routes(tmp_path / "routes")
    data = tmp_path / "data"
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    labelled = write_jsonl(tmp_path / "val.jsonl", LABELLED)
    where = ["--routes", str(routes), "--data-dir", str(data), "--quiet"]
    before, after = io.StringIO(), io.StringIO()
    assert indexer_main([*where, "eval", str(labelled)], out=before, embedder=embedder) == 0
    assert indexer_main(["eval", str(labelled), *where], out=after, embedder=embedder) == 0
    figures = [line for line in before.getvalue().splitlines() if not line.startswith("done in")]
    assert figures == [line for line in after.getvalue().splitlines() if not line.startswith("done in")]
    assert "accuracy (fallback as a class)" in before.getvalue()


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--dry-run", "eval", "f.jsonl"], "--dry-run does not apply to `eval`"),
        (["--dry-run", "calibrate", "f.jsonl"], "--dry-run does not apply to `calibrate`"),
        (["--model", "m", "import", "f.jsonl", "--out", "o"], "--model does not apply to `import`"),
        (["--routes", "r", "import", "f.jsonl", "--out", "o"], "--routes does not apply to `import`"),
        (["--replace-configured-index", "eval", "f.jsonl"], "--replace-configured-index does not apply to `eval`"),
    ],
)
def test_an_option_a_command_does_not_take_is_refused(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An option given before a command that does not take it is an error (exit 2) naming it, never ignored."""
    with pytest.raises(SystemExit) as info:
        indexer_main(argv, out=io.StringIO())
    assert info.value.code == 2
    assert problem in capsys.readouterr().err


# -- 2. hints safe to paste; the service's index guarded ------------------------------------
@pytest.mark.slow
def test_import_hints_build_their_own_index_when_pasted(
    tmp_path: Path, service_env: tuple[Path, Path], embedder: Embedder
) -> None:
    """Every command `import` prints runs as pasted, into an index of its own: the configured index stays untouched."""
    source = write_jsonl(
        tmp_path / "train.jsonl",
        [(t, route) for route, texts in yaml_routes(service_env[0]).items() for t in texts] + LABELLED,
    )
    out = io.StringIO()
    args = ["import", str(source), "--out", str(tmp_path / "imported"), "--val-share", "0.3"]
    assert indexer_main([*args, "--val-out", str(tmp_path / "imported-val.jsonl")], out=out) == 0
    commands = [c for c in printed_commands(out.getvalue()) if "TEST.jsonl" not in c]
    assert [c.split()[3] for c in commands] == ["reindex", "calibrate", "reindex"]
    for command in commands:
        assert paste(command + " --quiet", embedder=embedder) == 0, command
        assert "--data-dir" in command
    assert live(tmp_path / "imported-data") is not None
    assert live(service_env[1]) is None


def yaml_routes(root: Path) -> dict[str, list[str]]:
    """Each route's examples in a routes directory."""
    return {r.name: list(r.examples) for r in load_routes(root).routes}


def test_publishing_other_routes_into_the_configured_index_needs_the_flag(
    tmp_path: Path, service_env: tuple[Path, Path], embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--routes OTHER` without --data-dir is refused (exit 2), its pasted suggestion builds an index of its own,
    and --replace-configured-index publishes into the service's index."""
    service_routes, service_data = service_env
    run_reindex(load_routes(service_routes), EdgeStore(service_data), embedder)
    served = live(service_data)
    other = write_tiny_routes(tmp_path / "other", {"x": ["alpha one", "alpha two"], "y": ["beta one", "beta two"]})
    assert indexer_main(["--routes", str(other), "--quiet"], out=io.StringIO(), embedder=embedder) == 2
    err = capsys.readouterr().err
    assert "--replace-configured-index" in err and "the service serves" in err
    assert live(service_data) == served
    [suggestion] = printed_commands(err)
    assert paste(suggestion + " --quiet", embedder=embedder) == 0
    assert live(service_data) == served
    assert live(tmp_path / "other-data") is not None
    dry = io.StringIO()
    assert indexer_main(["--routes", str(other), "--dry-run"], out=dry, embedder=embedder) == 0
    assert "would be refused" in dry.getvalue()
    args = ["--routes", str(other), "--replace-configured-index", "--quiet"]
    assert indexer_main(args, out=io.StringIO(), embedder=embedder) == 0
    assert live(service_data) != served
    # The configured routes into the configured index need no flag.
    assert indexer_main(["--quiet"], out=io.StringIO(), embedder=embedder) == 0


def test_missing_index_hint_builds_the_index_the_command_then_finds(
    tmp_path: Path, embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    """`eval` on a missing index exits 1 with a re-index command that, pasted, lets the same `eval` run."""
    routes = write_tiny_routes(tmp_path / "routes")
    labelled = write_jsonl(tmp_path / "val.jsonl", LABELLED)
    args = ["eval", str(labelled), "--routes", str(routes), "--data-dir", str(tmp_path / "data"), "--quiet"]
    assert indexer_main(args, out=io.StringIO(), embedder=embedder) == 1
    [hint] = printed_commands(capsys.readouterr().err)
    assert paste(hint + " --quiet", embedder=embedder) == 0
    assert indexer_main(args, out=io.StringIO(), embedder=embedder) == 0


# -- 3. a re-import never silently drops calibrated values ----------------------------------
def test_reimport_names_calibrated_values_and_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Re-importing over `calibrate --write`'s parameters is refused (exit 2) naming what would be lost; --force replaces them."""
    from indexer.routes_writer import write_decision_params
    from router_core import DecisionParams

    source = write_jsonl(
        tmp_path / "train.jsonl",
        [(f"weather question {i}", "weather") for i in range(12)]
        + [(f"music request {i}", "music") for i in range(12)],
    )
    routes = tmp_path / "routes"
    args = ["import", str(source), "--out", str(routes)]
    assert indexer_main(args, out=io.StringIO()) == 0
    assert indexer_main(args, out=io.StringIO()) == 0  # nothing edited: a re-import is fine
    write_decision_params(routes, DecisionParams(k=7, threshold=0.52, route_thresholds={"music": 0.6}))
    before = {p.name: p.read_text() for p in routes.iterdir()}
    assert indexer_main(args, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "_router.yaml (k 7 -> 5, threshold 0.52 -> 0.45)" in err
    assert "music.yaml (own threshold 0.6)" in err
    assert "--force" in err
    assert {p.name: p.read_text() for p in routes.iterdir()} == before
    out = io.StringIO()
    assert indexer_main([*args, "--force"], out=out) == 0
    assert "replaced files edited since the last import (--force): _router.yaml, music.yaml" in out.getvalue()
    table = load_routes(routes)
    assert (table.params.k, table.params.threshold, table.params.route_thresholds) == (5, 0.45, {})


# -- 4. held-out split, per-route sample, --k --------------------------------------------------
def test_import_holds_out_a_seeded_split_and_samples_per_route(tmp_path: Path) -> None:
    """--val-share holds out each label's share (oos too) deterministically by seed, never an example; --per-route
    keeps N examples per route without changing the held-out queries; --k lands in _router.yaml."""
    rows = [(f"{label} query number {i}", label) for label in ("alpha", "beta", "gamma") for i in range(20)]
    rows += [(f"off topic {i}", "oos") for i in range(10)]
    source = write_jsonl(tmp_path / "train.jsonl", rows)

    def run(name: str, *extra: str) -> tuple[dict[str, list[str]], list[dict[str, str]]]:
        out_dir, val = tmp_path / name, tmp_path / f"{name}-val.jsonl"
        argv = ["import", str(source), "--out", str(out_dir), "--val-share", "0.25", "--val-out", str(val), *extra]
        assert indexer_main(argv, out=io.StringIO()) == 0
        return yaml_routes(out_dir), [json.loads(line) for line in val.read_text().splitlines()]

    routes, val = run("a", "--k", "7")
    assert load_routes(tmp_path / "a").params.k == 7
    assert {label: sum(r["label"] == label for r in val) for label in ("alpha", "beta", "gamma", "oos")} == {
        "alpha": 5,
        "beta": 5,
        "gamma": 5,
        "oos": 3,  # 25% of 10, rounded
    }
    assert {len(v) for v in routes.values()} == {15}
    examples = {t for texts in routes.values() for t in texts}
    assert not examples & {r["text"] for r in val}
    assert {t for t, _ in rows} == examples | {r["text"] for r in val} | {t for t, label in rows if label == "oos"}
    again_routes, again_val = run("b", "--k", "7")
    assert (again_routes, again_val) == (routes, val)
    few_routes, few_val = run("c", "--per-route", "4", "--seed", "0")
    assert few_val == val
    assert {len(v) for v in few_routes.values()} == {4}
    assert all(set(few_routes[r]) <= set(routes[r]) for r in routes)
    _, other_val = run("d", "--seed", "1")
    assert other_val != val and len(other_val) == len(val)


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--val-share", "0.2"], "--val-share needs --val-out"),
        (["--val-out", "v.jsonl"], "--val-out needs --val-share"),
        (["--val-share", "1.5", "--val-out", "v.jsonl"], "--val-share must be at least 0 and under 1"),
        (["--k", "0"], "--k must be between 1 and 100"),
        (["--per-route", "0"], "--per-route must be 1 or more"),
    ],
)
def test_import_rejects_options_that_cannot_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], problem: str
) -> None:
    """A bad import option is exit 2 naming it, and nothing is written."""
    source = write_jsonl(tmp_path / "train.jsonl", [("a b", "x"), ("c d", "x")])
    assert indexer_main(["import", str(source), "--out", str(tmp_path / "out"), *flags], out=io.StringIO()) == 2
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_import_never_overwrites_its_input_or_an_existing_val_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--val-out naming the input, or an existing file of other queries, is refused (exit 2) with the file intact."""
    source = write_jsonl(tmp_path / "train.jsonl", [(f"q{i}", "x") for i in range(6)])
    text = source.read_text()
    args = ["import", str(source), "--out", str(tmp_path / "out"), "--val-share", "0.5"]
    assert indexer_main([*args, "--val-out", str(source)], out=io.StringIO()) == 2
    assert "is the input file" in capsys.readouterr().err
    assert source.read_text() == text
    mine = write_jsonl(tmp_path / "mine.jsonl", [("keep me", "x")])
    assert indexer_main([*args, "--val-out", str(mine)], out=io.StringIO()) == 2
    assert "exists and holds other queries" in capsys.readouterr().err
    assert mine.read_text() == '{"text": "keep me", "label": "x"}\n'
    assert indexer_main([*args, "--val-out", str(mine), "--force"], out=io.StringIO()) == 0


# -- 5. --quiet silences model loading ---------------------------------------------------------
@pytest.mark.slow
def test_quiet_silences_the_model_loading_progress_bar(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-index that loads the model on torch prints "Loading weights" progress on stderr, and
    none with --quiet; on the default backend (ONNX Runtime, which has no such bar) --quiet is
    silent too, its first-use export included."""
    routes = write_tiny_routes(tmp_path / "routes")
    base = ["reindex", "--routes", str(routes)]
    monkeypatch.setenv("ROUTER_EMBEDDING__BACKEND", "torch")
    assert indexer_main([*base, "--data-dir", str(tmp_path / "loud")], out=io.StringIO()) == 0
    assert "Loading weights" in capfd.readouterr().err
    assert indexer_main([*base, "--data-dir", str(tmp_path / "quiet"), "--quiet"], out=io.StringIO()) == 0
    assert capfd.readouterr().err == ""
    monkeypatch.delenv("ROUTER_EMBEDDING__BACKEND")
    assert indexer_main([*base, "--data-dir", str(tmp_path / "onnx"), "--quiet"], out=io.StringIO()) == 0
    assert capfd.readouterr().err == ""


# -- 6. cheap checks first; the model loads only when something is embedded --------------------
@pytest.fixture
def unloadable_default_model(tmp_path: Path) -> Path:
    """A model directory that claims the default model's id but holds no weights: loading it fails."""
    model = tmp_path / "claims-default"
    model.mkdir()
    (model / MODEL_ID_FILE).write_text(json.dumps({"model_id": f"sentence-transformers/{DEFAULT_MODEL}"}))
    return model


def test_reindex_with_nothing_to_embed_loads_no_model(
    tmp_path: Path, embedder: Embedder, unloadable_default_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unchanged routes, or only a parameter changed, re-index without loading the model; a new example needs it."""
    routes = write_tiny_routes(tmp_path / "routes")
    data = tmp_path / "data"
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    args = ["reindex", "--routes", str(routes), "--data-dir", str(data), "--model", str(unloadable_default_model)]
    out = io.StringIO()
    assert indexer_main([*args, "--quiet"], out=out) == 0
    assert "already up to date" in out.getvalue() and "not loaded (nothing to embed)" in out.getvalue()
    (routes / "_router.yaml").write_text((routes / "_router.yaml").read_text().replace("k: 3", "k: 4"))
    out = io.StringIO()
    assert indexer_main([*args, "--quiet"], out=out) == 0
    assert "published and live" in out.getvalue() and "embedded 0" in out.getvalue()
    (routes / "music.yaml").write_text(
        (routes / "music.yaml").read_text().replace("examples:", 'examples:\n  - "play jazz loud"')
    )
    assert indexer_main([*args, "--quiet"], out=io.StringIO()) == 1
    assert "cannot load embedding model" in capsys.readouterr().err


def test_eval_and_calibrate_check_the_index_before_loading_the_model(
    tmp_path: Path, embedder: Embedder, unloadable_default_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No index, or an index built with another model, is reported without loading any model."""
    routes = write_tiny_routes(tmp_path / "routes")
    labelled = write_jsonl(tmp_path / "val.jsonl", LABELLED)
    for command in ("eval", "calibrate"):
        args = [command, str(labelled), "--routes", str(routes), "--data-dir", str(tmp_path / "none")]
        assert indexer_main([*args, "--model", str(unloadable_default_model), "--quiet"], out=io.StringIO()) == 1
        err = capsys.readouterr().err
        assert "no live index" in err and "cannot load" not in err
    data = tmp_path / "data"
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    args = ["eval", str(labelled), "--routes", str(routes), "--data-dir", str(data), "--quiet"]
    assert indexer_main([*args, "--model", str(tmp_path / "not-a-model")], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "was built with model" in err and "cannot load" not in err


# -- 8. percentages, the fallback apart --------------------------------------------------------
def test_eval_prints_percentages_and_lists_the_fallback_apart(tmp_path: Path, embedder: Embedder) -> None:
    """The per-route table is in percent like the summary, counts only routes, and the fallback has its own line."""
    routes = write_tiny_routes(tmp_path / "routes")
    data = tmp_path / "data"
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    labelled = write_jsonl(tmp_path / "val.jsonl", LABELLED)
    out = io.StringIO()
    json_path = tmp_path / "eval.json"
    args = ["eval", str(labelled), "--routes", str(routes), "--data-dir", str(data), "--quiet"]
    assert indexer_main([*args, "--json", str(json_path)], out=out, embedder=embedder) == 0
    text = out.getvalue()
    report = json.loads(json_path.read_text())["report"]
    assert "routes: 3; the 3 worst by F1" in text
    table = text.split("worst by F1")[1].split("\n\n")[0].splitlines()[3:]
    assert len(table) == 3 and not any(row.startswith("default") for row in table)
    for row in table:
        cells = row.split()
        assert all(c.endswith("%") for c in cells[1:4]), row
    assert {r["route"] for r in report["per_route"]} == {"weather", "music", "banking"}
    fallback = report["fallback"]
    assert fallback["route"] == "default" and fallback["support"] == 3
    assert (
        f"fallback (default route 'default'): precision {100 * fallback['precision']:.1f}%, "
        f"recall {100 * fallback['recall']:.1f}%; 3 queries labelled out of scope, {fallback['predicted']} fell back"
    ) in text


# -- 9. progress and time ----------------------------------------------------------------------
@pytest.mark.slow
def test_eval_and_calibrate_show_progress_unless_quiet_and_the_time(
    tmp_path: Path, embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    """Embedding and the calibration search report progress on stderr (none with --quiet); every command prints its time."""
    routes = write_tiny_routes(tmp_path / "routes")
    data = tmp_path / "data"
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    labelled = write_jsonl(tmp_path / "val.jsonl", LABELLED)
    where = ["--routes", str(routes), "--data-dir", str(data)]
    out = io.StringIO()
    assert indexer_main(["eval", str(labelled), *where], out=out, embedder=embedder) == 0
    err = capsys.readouterr().err
    assert "embedding and searching 9 queries  9/9 (100%)" in err
    assert out.getvalue().splitlines()[-1].startswith("done in ")
    out = io.StringIO()
    assert indexer_main(["calibrate", str(labelled), *where], out=out, embedder=embedder) == 0
    err = capsys.readouterr().err
    assert "search: settings scored" in err and "held-out check, half 2 of 2: settings scored" in err
    assert out.getvalue().splitlines()[-1].startswith("done in ")
    assert indexer_main(["calibrate", str(labelled), *where, "--quiet"], out=io.StringIO(), embedder=embedder) == 0
    assert capsys.readouterr().err == ""


def test_reindex_shows_what_it_embeds_and_its_time(tmp_path: Path, embedder: Embedder) -> None:
    """A re-index says what it does as it goes, what it embedded, its index time and total time;
    run again it embeds nothing and says the index is up to date."""
    routes = write_tiny_routes(tmp_path / "routes")
    where = ["--routes", str(routes), "--data-dir", str(tmp_path / "data")]
    out = io.StringIO()
    assert indexer_main(["reindex", *where], out=out, embedder=embedder) == 0
    text = out.getvalue()
    assert "... writing version" in text and "published and live" in text and "reused 0" in text, text
    assert re.search(r"index time \d+\.\d\d s, total \d+\.\d s", text), text
    out = io.StringIO()
    assert indexer_main(["reindex", *where], out=out, embedder=embedder) == 0
    assert "already up to date" in out.getvalue() and "embedded 0" in out.getvalue(), out.getvalue()


def test_progress_redraws_on_a_terminal_and_logs_tenths_elsewhere() -> None:
    """On a terminal one line is redrawn; in a log a line per tenth of the work; disabled prints nothing."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    log, tty, off = io.StringIO(), Terminal(), io.StringIO()
    for stream, enabled in ((log, True), (tty, True), (off, False)):
        bar = Progress(enabled=enabled, stream=stream, min_interval_s=0.0)
        bar.stage("work", 100)
        for _ in range(100):
            bar.advance()
        bar.finish()
    assert len(log.getvalue().splitlines()) == 11 and "work  100/100 (100%)" in log.getvalue()
    assert tty.getvalue().count("\n") == 1 and tty.getvalue().count("\r") == 101
    assert off.getvalue() == ""


# -- the README's evaluation workflow, as written ---------------------------------------------
ROOT = Path(__file__).resolve().parents[1]


def readme_workflow() -> list[str]:
    """The commands of README's evaluation workflow block, continuation lines joined."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- workflow:")[1].split("```bash\n")[1].split("```")[0]
    lines = block.replace("\\\n", " ").splitlines()
    return [" ".join(line.split()) for line in lines if line.strip() and not line.startswith("#")]


def figures_of(evaluated: str) -> dict[str, float]:
    """In-scope accuracy and fallback recall from `eval`'s printed summary."""
    return {
        name.strip(): float(value.strip().rstrip("%"))
        for name, _, value in (line.rpartition("  ") for line in evaluated.splitlines())
        if name.strip() in ("in-scope accuracy", "fallback recall")
    }


@pytest.mark.slow
@pytest.mark.parametrize("oos_label", [True, False], ids=["with-oos-label", "without-oos-label"])
def test_readme_workflow(tmp_path: Path, embedder: Embedder, oos_label: bool) -> None:
    """README's workflow (import with a held-out split, an index of its own, calibrate --write, re-index, eval)
    runs as written on a labelled file without a val split: the shipped routes' examples plus labelled queries,
    with or without out-of-scope ones (then calibrate warns and keeps the routes' threshold). It ends with fallback
    recall on the test file no worse than the routes' defaults (an eval run after step 2)."""
    rows = [(text, route) for route, texts in yaml_routes(SHIPPED_ROUTES).items() for text in texts]
    rows += [(q.text, q.label) for q in load_labelled(ROOT / "evals" / "shipped-val.jsonl")]
    rows = [(t, label) for t, label in rows if oos_label or label != "oos"]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    work = tmp_path / "clinc"
    paths = {
        "../shared/datasets/clinc150/train.jsonl": str(train),
        "../shared/datasets/clinc150/test.jsonl": str(ROOT / "evals" / "shipped-test.jsonl"),
        "/tmp/clinc": str(work),
    }
    commands = readme_workflow()
    assert [c.split()[3] for c in commands] == ["import", "reindex", "calibrate", "reindex", "eval"]

    def here(command: str) -> str:
        for written, local in paths.items():
            command = command.replace(written, local)
        return command

    outputs = []
    defaults = io.StringIO()
    for step, command in enumerate(commands):
        out = io.StringIO()
        assert paste(here(command), embedder=embedder, out=out, cwd=ROOT) == 0, command
        outputs.append(out.getvalue())
        if step == 1:  # the routes' defaults, scored on the test file before calibration
            assert paste(here(commands[-1]).split(" --html")[0], embedder=embedder, out=defaults, cwd=ROOT) == 0
    imported, _, calibrated, reindexed, evaluated = outputs
    val = load_labelled(work / "val.jsonl")
    held_oos = 4 if oos_label else 0  # 20% of the 20 out-of-scope queries
    assert sum(q.label == "oos" for q in val) == held_oos
    assert not {q.text for q in val} & {t for texts in yaml_routes(work / "routes").values() for t in texts}
    assert f"held out {len(val)} queries ({held_oos} out of scope)" in imported
    assert "held-out estimate" in calibrated
    assert ("WARNING" in calibrated and "threshold is KEPT" in calibrated) is not oos_label
    if "wrote the chosen parameters" in calibrated:
        assert "published and live" in reindexed and "embedded 0" in reindexed  # only parameters changed
    else:
        assert "nothing written" in calibrated and "already up to date" in reindexed
    store = EdgeStore(work / "data")
    index = store.open_version(store.live_version() or "")
    try:
        assert index.table.params == load_routes(work / "routes").params  # eval ran with the calibrated parameters
    finally:
        index.close()
        store.close()
    before, after = figures_of(defaults.getvalue()), figures_of(evaluated)
    assert set(before) == set(after) == {"in-scope accuracy", "fallback recall"}
    assert after["fallback recall"] >= before["fallback recall"]
    if "nothing written" in calibrated:
        assert after == before  # the routes' parameters stand: the same decisions
    assert (work / "report.html").read_text().startswith("<!doctype html>")
