"""`calibrate` says what it does (issue 24): without off-topic queries it keeps the routes'
threshold and says so loudly (`--off-topic FILE` adds some, `--no-off-topic` goes without), it
adopts a rule only by the stated test (the first one too), and `--write` writes nothing when
nothing beat the given parameters. Real model, real embedded index, the shipped routes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from indexer.cli import main as indexer_main
from indexer.labelled import load_labelled
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from tests.test_evaluation import LABELLED, write_jsonl, write_tiny_routes

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_VAL = ROOT / "evals" / "shipped-val.jsonl"


def only_oos(path: Path) -> Path:
    """The shipped validation file's out-of-scope queries, and a few in-scope ones (which --off-topic ignores)."""
    queries = load_labelled(SHIPPED_VAL)
    rows = [(q.text, q.label) for q in queries if q.label == "oos"] + [(q.text, q.label) for q in queries[:3]]
    return write_jsonl(path, rows)


def without_oos(path: Path) -> Path:
    """The shipped validation queries minus the out-of-scope ones: a data set without that label."""
    return write_jsonl(path, [(q.text, q.label) for q in load_labelled(SHIPPED_VAL) if q.label != "oos"])


@pytest.fixture
def shipped_index(routes_dir: Path, tmp_path: Path, embedder: Embedder) -> list[str]:
    """A private copy of the shipped routes indexed into a data directory of its own; the options that name them."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    return ["--routes", str(routes_dir), "--data-dir", str(data)]


def files_of(routes: Path) -> dict[str, bytes]:
    """Every file of a routes directory, byte for byte."""
    return {p.name: p.read_bytes() for p in sorted(routes.iterdir())}


def test_without_off_topic_queries_the_threshold_is_kept_and_said_loudly(
    tmp_path: Path, routes_dir: Path, shipped_index: list[str], embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    """A validation file with no out-of-scope query: a WARNING on stdout and stderr, the routes' threshold (0.36,
    neighbour mode) kept by the search and by --write, and a reminder after the report."""
    given = load_routes(routes_dir).params
    val = without_oos(tmp_path / "val.jsonl")
    out = io.StringIO()
    json_path = tmp_path / "cal.json"
    args = ["calibrate", str(val), *shipped_index, "--write", "--json", str(json_path)]
    assert indexer_main(args, out=out, embedder=embedder) == 0
    text = out.getvalue()
    assert f"WARNING: {val} holds no out-of-scope query" in text
    assert "So the routes' threshold is KEPT: threshold 0.36 (neighbour mode)" in text
    assert "threshold kept as given (0.36, neighbour mode)" in text
    assert "per-route thresholds: not searched" in text
    assert "note: no out-of-scope query was seen, so the routes' threshold was kept" in text
    assert "the routes' threshold is kept" in capsys.readouterr().err
    result = json.loads(json_path.read_text())["result"]
    assert result["threshold_held"] is True and result["out_of_scope"] == 0
    assert all(row["threshold"] == 0.36 and row["threshold_mode"] == "neighbour" for row in result["table"])
    written = load_routes(routes_dir).params
    assert (written.threshold, written.threshold_mode, written.route_thresholds) == (
        given.threshold,
        given.threshold_mode,
        given.route_thresholds,
    )


@pytest.mark.slow
def test_no_off_topic_searches_the_threshold_and_off_topic_adds_queries(
    tmp_path: Path, shipped_index: list[str], embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    """--no-off-topic searches every threshold on in-scope queries (no banner, a warning); --off-topic FILE adds that
    file's oos lines (only those, once) and the threshold is searched as usual; repeated, every file's, once."""
    val = without_oos(tmp_path / "val.jsonl")
    out, json_path = io.StringIO(), tmp_path / "free.json"
    args = ["calibrate", str(val), *shipped_index, "--no-off-topic", "--json", str(json_path)]
    assert indexer_main(args, out=out, embedder=embedder) == 0
    assert "WARNING" not in out.getvalue() and "--no-off-topic was given" in out.getvalue()
    result = json.loads(json_path.read_text())["result"]
    assert result["threshold_held"] is False
    assert len({row["threshold"] for row in result["table"]}) > 10

    extra = only_oos(tmp_path / "offtopic.jsonl")
    out, json_path = io.StringIO(), tmp_path / "added.json"
    args = ["calibrate", str(val), *shipped_index, "--off-topic", str(extra), "--json", str(json_path)]
    assert indexer_main(args, out=out, embedder=embedder) == 0
    n_val, n_oos = len(load_labelled(val)), sum(q.label == "oos" for q in load_labelled(SHIPPED_VAL))
    assert f"calibrating on {n_val + n_oos} queries from {val} and {extra}" in out.getvalue()
    assert "WARNING" not in out.getvalue()
    result = json.loads(json_path.read_text())["result"]
    assert (result["queries"], result["out_of_scope"], result["threshold_held"]) == (n_val + n_oos, n_oos, False)

    # repeated: every file's oos lines, each query once (the second file repeats the first)
    again = only_oos(tmp_path / "again.jsonl")
    out, json_path = io.StringIO(), tmp_path / "twice.json"
    args = ["calibrate", str(val), *shipped_index, "--off-topic", str(extra), "--off-topic", str(again)]
    assert indexer_main([*args, "--json", str(json_path)], out=out, embedder=embedder) == 0
    assert f"calibrating on {n_val + n_oos} queries from {val} and {extra} and {again}" in out.getvalue()
    result = json.loads(json_path.read_text())["result"]
    assert (result["queries"], result["out_of_scope"]) == (n_val + n_oos, n_oos)
    capsys.readouterr()


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--no-off-topic"], "--no-off-topic, but"),
        (["--off-topic", "{in_scope}"], "holds no new query labelled oos"),
        (["--off-topic", "{test}"], "looks like a test file"),
        (["--off-topic", "{oos}", "--off-topic", "{test}"], "looks like a test file"),
        (["--off-topic", "{in_scope}", "--off-topic", "{in_scope}"], "hold no new query labelled oos"),
    ],
)
def test_off_topic_options_that_cannot_work_are_refused(
    tmp_path: Path,
    shipped_index: list[str],
    embedder: Embedder,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    problem: str,
) -> None:
    """--no-off-topic on a file that has out-of-scope queries, an --off-topic file without any, or one named like a
    test split: exit 2 naming the problem, nothing written."""
    paths = {
        "{in_scope}": str(without_oos(tmp_path / "in-scope.jsonl")),
        "{test}": str(only_oos(tmp_path / "test.jsonl")),
        "{oos}": str(only_oos(tmp_path / "oos.jsonl")),
    }
    val = write_jsonl(tmp_path / "val.jsonl", [(q.text, q.label) for q in load_labelled(SHIPPED_VAL)])
    argv = ["calibrate", str(val), *shipped_index, "--write", *[paths.get(f, f) for f in flags]]
    routes = Path(shipped_index[1])
    before = files_of(routes)
    assert indexer_main(argv, out=io.StringIO(), embedder=embedder) == 2
    assert problem in capsys.readouterr().err
    assert files_of(routes) == before


def test_off_topic_and_no_off_topic_exclude_each_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Both flags at once are an argument error (exit 2) naming them."""
    with pytest.raises(SystemExit) as info:
        indexer_main(["calibrate", "v.jsonl", "--off-topic", "o.jsonl", "--no-off-topic"], out=io.StringIO())
    assert info.value.code == 2
    assert "not allowed with argument --off-topic" in capsys.readouterr().err


@pytest.mark.slow
def test_write_writes_nothing_when_nothing_beats_the_given_parameters(tmp_path: Path, embedder: Embedder) -> None:
    """Nine validation queries show no rule beating the routes' parameters by two standard errors: the first rule is
    not adopted either, --write leaves every file as it was, says so, and suggests no re-index."""
    routes = write_tiny_routes(tmp_path / "routes")
    data = tmp_path / "data"
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    val = write_jsonl(tmp_path / "val.jsonl", LABELLED)
    before = files_of(routes)
    out, json_path = io.StringIO(), tmp_path / "cal.json"
    argv = [
        "calibrate",
        str(val),
        "--routes",
        str(routes),
        "--data-dir",
        str(data),
        "--write",
        "--json",
        str(json_path),
    ]
    assert indexer_main(argv, out=out, embedder=embedder) == 0
    text = out.getvalue()
    assert "nothing beat the given parameters by that test: they stand" in text
    assert "nothing written: no variant beat the given parameters" in text
    assert "next:" not in text
    assert files_of(routes) == before
    result = json.loads(json_path.read_text())["result"]
    assert not any(v["adopted"] for v in result["variants"])
    first = next(v for v in result["variants"] if v["name"] == "majority vote + threshold")
    assert first["verdict"].startswith(("not adopted", "same as"))
    assert result["params"] == {**load_routes(routes).params.to_dict(), "default_route": "default"}


def test_import_of_a_file_without_an_out_of_scope_label_says_what_calibrate_will_do(tmp_path: Path) -> None:
    """`import --val-share` on a file with no oos label says its validation file holds no off-topic query, that
    calibrate will keep the routes' threshold, and how to add some (--off-topic)."""
    rows = [(f"{label} question number {i}", label) for label in ("alpha", "beta") for i in range(10)]
    source = write_jsonl(tmp_path / "train.jsonl", rows)
    out = io.StringIO()
    argv = ["import", str(source), "--out", str(tmp_path / "routes"), "--val-share", "0.2"]
    assert indexer_main([*argv, "--val-out", str(tmp_path / "val.jsonl")], out=out) == 0
    text = out.getvalue()
    assert "held out 4 queries (0 out of scope)" in text
    assert f"note: {source} has no out-of-scope label (oos)" in text
    assert "calibrate will say so and keep the routes' threshold" in text and "--off-topic FILE" in text
    with_oos = write_jsonl(tmp_path / "train-oos.jsonl", [*rows, *[(f"off topic {i}", "oos") for i in range(5)]])
    out = io.StringIO()
    argv = ["import", str(with_oos), "--out", str(tmp_path / "routes2"), "--val-share", "0.2"]
    assert indexer_main([*argv, "--val-out", str(tmp_path / "val2.jsonl")], out=out) == 0
    assert "no out-of-scope label" not in out.getvalue()
