"""Smoke test of the benchmark's own pieces (bench/) on a 3-route dataset: they run and report
every figure. Not a benchmark: no timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.cli import serve_and_measure, worker_for
from bench.contention import idle_and_loaded
from bench.data import load_splits, subset
from bench.decisions import compare, routed
from bench.index_build import index_build
from bench.peer import tune_threshold
from bench.quality import our_quality
from bench.reindex_speed import reindex_in_process
from bench.report import END, START, render, write_section
from bench.setups import DEFAULT, fresh_process_load
from bench.targets import check_backend_targets, check_targets
from indexer.importer import write_routes_from_jsonl
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore

TRAIN = {
    "weather": [
        "will it rain tomorrow",
        "what is the forecast for the weekend",
        "is it sunny outside",
        "how cold is it today",
        "will there be snow tonight",
        "what's the temperature right now",
    ],
    "recipe": [
        "how do i bake bread",
        "give me a recipe for pancakes",
        "how long do i boil an egg",
        "what can i cook with chicken and rice",
        "how do i make tomato soup",
        "a good pasta sauce recipe",
    ],
    "maths": [
        "what is 12 times 7",
        "solve 3x plus 4 equals 10",
        "what is the square root of 81",
        "how do i compute a derivative",
        "what is 15 percent of 200",
        "add 345 and 678",
    ],
}
VAL = [
    ("is it going to rain later", "weather"),
    ("how warm will it be tomorrow", "weather"),
    ("how do i make pizza dough", "recipe"),
    ("recipe for chocolate cake", "recipe"),
    ("what is 9 times 8", "maths"),
    ("integrate x squared", "maths"),
    ("book me a flight to rome", "oos"),
    ("who won the football game", "oos"),
]
TEST = [
    ("will it be windy this afternoon", "weather"),
    ("what's the forecast for monday", "weather"),
    ("how do i cook rice", "recipe"),
    ("a recipe for banana bread", "recipe"),
    ("what is 100 divided by 4", "maths"),
    ("solve 2x equals 14", "maths"),
    ("reset my bank password", "oos"),
    ("play some jazz music", "oos"),
]


def _write(path: Path, rows: list[tuple[str, str]]) -> None:
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, bare_embedder: Embedder) -> dict[str, Any]:
    """A 3-route CLINC-shaped dataset, its routes directory and a built index."""
    root = tmp_path_factory.mktemp("bench-smoke")
    folder = root / "datasets" / "clinc150"
    folder.mkdir(parents=True)
    train = [(t, label) for label, texts in TRAIN.items() for t in texts]
    train.append(("tell me a joke", "oos"))
    _write(folder / "train.jsonl", train)
    _write(folder / "val.jsonl", VAL)
    _write(folder / "test.jsonl", TEST)
    splits = load_splits(root / "datasets")
    routes_dir, data_dir = root / "routes", root / "index"
    write_routes_from_jsonl(folder / "train.jsonl", routes_dir)
    table = load_routes(routes_dir)
    store = EdgeStore(data_dir)
    build = index_build(bare_embedder, table, store, lambda _m: None)
    return {
        "root": root,
        "splits": splits,
        "routes_dir": routes_dir,
        "data_dir": data_dir,
        "table": table,
        "store": store,
        "build": build,
    }


def test_index_build_is_compared_with_bare_encode(tiny: dict[str, Any]) -> None:
    """The index build embeds every train example once and reports both throughputs."""
    build = tiny["build"]
    assert build["examples"] == 18
    assert build["embedded"] == 18
    assert build["bare_encode_per_s"] > 0
    assert build["examples_per_s"] > 0
    assert build["vs_bare_encode"] > 0


@pytest.mark.slow
def test_quality_scores_defaults_and_calibrated_parameters(tiny: dict[str, Any], bare_embedder: Embedder) -> None:
    """Both settings of our router get every headline figure, from the evaluation code."""
    splits = tiny["splits"]
    quality = our_quality(bare_embedder, tiny["store"], splits.val, splits.test, log=lambda _m: None)
    for key in ("ours_default", "ours_calibrated"):
        q = quality[key]
        assert q["queries"] == 8
        assert q["out_of_scope"] == 2
        for figure in ("accuracy", "in_scope_accuracy", "fallback_recall", "fallback_precision"):
            assert 0.0 <= q[figure] <= 1.0
        assert q["params"]["default_route"] == "default"
        right = q["in_scope"] * q["in_scope_accuracy"] + q["out_of_scope"] * q["fallback_recall"]
        assert q["accuracy"] == pytest.approx(right / q["queries"])
    assert quality["ours_default"]["in_scope_accuracy"] >= 0.5
    assert quality["ours_calibrated"]["calibration"]["engine_mismatches"] == 0


def test_subset_keeps_whole_intents_and_a_share_of_oos(tiny: dict[str, Any]) -> None:
    """A quick run keeps the first intents by name with all their queries, plus some oos."""
    small = subset(tiny["splits"], 2, min_oos=1)
    assert {q.label for q in small.train} == {"maths", "oos", "recipe"}
    assert sum(q.label == "oos" for q in small.test) == 1
    assert sum(q.label == "maths" for q in small.test) == 2


@pytest.mark.slow
def test_service_figures_come_from_the_real_service(tiny: dict[str, Any], derived_dir: Path, tmp_path: Path) -> None:
    """Latency (bare and in process in the setup's worker process, HTTP against `python -m
    service`) and throughput at 1/8/32 clients run against the real service."""
    queries = [t for t, _ in TEST]
    with worker_for(DEFAULT, derived_dir) as worker:
        assert worker.facts["backend"] == DEFAULT.backend
        with pytest.raises(RuntimeError, match="classify before open"):
            worker.call("classify", text="a question")
        speed = serve_and_measure(
            DEFAULT,
            worker,
            tiny["routes_dir"],
            tiny["data_dir"],
            derived_dir,
            latency_queries=queries[:3],
            load_queries=queries,
            duration=0.5,
            work=tmp_path,
            log=lambda _m: None,
        )
    assert speed["backend"] == DEFAULT.backend
    for path in ("bare_encode", "in_process", "http"):
        assert speed["latency"][path]["n"] == 3
        assert speed["latency"][path]["p50_ms"] > 0
    assert speed["latency"]["http"]["p50_vs_bare_encode"] > 0
    levels = speed["throughput"]["levels"]
    assert [lv["clients"] for lv in levels] == [1, 8, 32]
    for level in levels:
        assert level["errors"] == 0
        assert level["requests"] > 0
    assert levels[0]["vs_single_client"] == 1.0


def test_reindex_after_one_route_change_embeds_only_the_change(tiny: dict[str, Any], bare_embedder: Embedder) -> None:
    """Editing one route re-embeds its two changed examples and reuses every other vector."""
    before = tiny["store"].live_version()
    figures = reindex_in_process(tiny["routes_dir"], tiny["store"], bare_embedder, "smoke edit")
    assert figures["changed"] is True
    assert figures["embedded"] == 2
    assert figures["reused"] == 17
    assert tiny["store"].live_version() != before


def test_peer_threshold_is_tuned_for_the_calibration_objective() -> None:
    """The threshold tuned for semantic-router maximises 0.8 in-scope accuracy + 0.2 recall."""
    top = ["a", "b", "a", "b"]
    confidence = [0.9, 0.8, 0.3, 0.2]
    gold = ["a", "b", "oos", "oos"]
    threshold, objective = tune_threshold(top, confidence, gold, "default")
    assert 0.3 < threshold <= 0.8
    assert objective == pytest.approx(1.0)


def test_markdown_section_is_rewritten_between_markers(tmp_path: Path) -> None:
    """Only the generated section changes; text around the markers stays."""
    result: dict[str, Any] = {
        "command": "python -m bench",
        "quality": {
            "ours_calibrated": {
                "accuracy": 0.9,
                "in_scope_accuracy": 0.96,
                "fallback_recall": 0.81,
                "fallback_precision": 0.9,
                "params": {"k": 5, "threshold": 0.5},
            }
        },
    }
    result["targets"] = check_targets(result)
    met = {t["name"]: t["met"] for t in result["targets"]}
    assert met["calibrated in-scope accuracy (test, base model)"] is True
    assert "calibrated fallback recall (test, fine-tuned)" not in met
    assert met["classify p50 over HTTP vs bare encode of the query"] is None
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# Mine\n\nintro\n\n{START}\nold figures\n{END}\n\nafterword\n")
    write_section(path, render(result))
    write_section(path, render(result))
    text = path.read_text()
    assert text.startswith("# Mine\n\nintro\n\n")
    assert text.rstrip().endswith("afterword")
    assert text.count(START) == 1
    assert "old figures" not in text
    row = "| this router, all-MiniLM-L6-v2 | calibrated on val (k=5, threshold=0.5) | 96.0% | 81.0% | 90.0% | 90.0% |"
    assert row in text
    fresh = tmp_path / "new.md"
    write_section(fresh, render(result))
    assert fresh.read_text().startswith("# Benchmarks")


@pytest.mark.slow
def test_search_bench_times_both_engines_on_the_same_points(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m bench.search` builds one synthetic version in each engine and reports both."""
    from bench.search import main as search_main

    assert search_main(["--points", "600", "--queries", "25", "--k", "5"]) == 0
    out = capsys.readouterr().out
    figures = json.loads(out[: out.rindex("}") + 1])
    for engine in ("qdrant_edge_exact", "qdrant_client_local"):
        assert figures[engine]["n"] == 25 and figures[engine]["p50_ms"] > 0
    assert figures["edge_vs_local_p50"] > 0
    assert "search over 600 points" in out


@pytest.mark.slow
def test_decisions_of_two_setups_are_compared_query_by_query(
    tiny: dict[str, Any], embedder: Embedder, torch_embedder: Embedder, tmp_path: Path
) -> None:
    """Torch and ONNX Runtime, each on its own index, route the test queries alike; a difference
    would be listed with both routes."""
    torch_store, onnx_store = EdgeStore(tmp_path / "torch-index"), EdgeStore(tmp_path / "onnx-index")
    run_reindex(tiny["table"], torch_store, torch_embedder)
    run_reindex(tiny["table"], onnx_store, embedder)
    texts = [t for t, _ in TEST]
    params = {"defaults": tiny["table"].params}
    before = routed(torch_embedder, torch_store, texts, params)
    after = routed(embedder, onnx_store, texts, params)
    found = compare(texts, before, after)
    assert found["defaults"]["queries"] == 8
    assert found["defaults"]["changed"] == 0 and found["defaults"]["examples"] == []
    assert found["defaults"]["max_score_difference"] < 1e-4
    moved = {"defaults": [("maths", 0.9), *before["defaults"][1:]]}
    listed = compare(texts, moved, before)["defaults"]
    assert listed["changed"] == (before["defaults"][0][0] != "maths")


def test_backend_targets_and_section_render_from_a_result() -> None:
    """Issue 15's targets are computed from the side-by-side figures and rendered with them."""
    idle = {"p50_ms": 2.0, "p99_ms": 5.0}
    result: dict[str, Any] = {
        "models": {
            "today": {
                "label": "torch",
                "backend": "torch",
                "threads_used": 2,
                "fresh_process": {"wall_s": 9.0, "load_s": 5.0},
            },
            "default": {
                "label": "onnx",
                "backend": "onnx",
                "threads_used": 1,
                "fresh_process": {"wall_s": 2.0, "load_s": 0.4},
            },
        },
        "speed": {
            "index_build": {"examples": 100},
            "index_build_by_setup": {"today": 30.0, "default": 20.0},
            "bare_encode": {
                "today": {
                    "idle": {"p50_ms": 20.0, "p99_ms": 40.0},
                    "neighbour": {"p50_ms": 50.0, "p99_ms": 500.0},
                    "p99_ratio": 12.5,
                },
                "default": {"idle": idle, "neighbour": {"p50_ms": 3.0, "p99_ms": 12.0}, "p99_ratio": 2.4},
            },
            "service": {
                "today": {"throughput": {"levels": [{"clients": 32, "requests_per_s": 50.0}]}},
                "default": {
                    "latency": {"http": {"p50_ms": 3.0, "p99_ms": 6.0, "p50_vs_bare_encode": 1.5}},
                    "throughput": {"levels": [{"clients": 32, "requests_per_s": 250.0}]},
                },
            },
        },
        "decisions_vs_today": {"defaults": {"queries": 10, "changed": 0, "max_score_difference": 1e-7, "examples": []}},
    }
    met = {t["name"].split(",")[0]: t["met"] for t in check_backend_targets(result)}
    assert met["bare encode of one query"] is True  # 0.1x
    assert met["bare encode p99 beside a CPU-heavy neighbour vs idle (default backend)"] is True
    assert met["classify p50 over HTTP vs bare encode"] is False  # 1.5x > 1.3x
    assert met["throughput at 32 clients"] is True  # 5x
    assert met["CLINC150 index build (all train examples)"] is False  # 1.5x < 2x
    result["backend_targets"] = check_backend_targets(result)
    text = render(result)
    assert "| index build, 100 examples, s (speed vs today) | 30.0 | 20.0 (1.50x) |" in text
    assert "| defaults | 0 of 10 | 1e-07 |" in text
    assert "### Targets (issue 15" in text


@pytest.mark.slow
def test_contention_runs_each_probe_idle_and_beside_a_neighbour(tmp_path: Path, embedder: Embedder) -> None:
    """The neighbour process starts, runs while the probes are timed a second time, and stops."""
    figures = idle_and_loaded(
        {"bare": lambda q: embedder.model.encode_queries([q])},  # type: ignore[attr-defined]
        ["how do i bake bread", "what is 12 times 7"],
        [t for texts in TRAIN.values() for t in texts],
        tmp_path,
    )
    assert figures["bare"]["idle"]["n"] == figures["bare"]["neighbour"]["n"] == 2
    assert figures["bare"]["p99_ratio"] > 0


@pytest.mark.slow
def test_fresh_process_load_is_timed_from_the_cache(derived_dir: Path) -> None:
    """A fresh process loads the default setup from the cached conversion and answers a query."""
    figures = fresh_process_load(DEFAULT, derived_dir, rounds=1)
    assert figures["wall_s"] > figures["load_s"] > 0 and figures["first_query_s"] > 0


@pytest.mark.slow
def test_route_sets_bench_reports_both_services() -> None:
    """bench.route_sets serves 1 and 2 sets side by side and reports p50, the ratio and RSS of each."""
    from bench.route_sets import render as render_route_sets
    from bench.route_sets import run as run_route_sets

    result = run_route_sets(2, 5)
    assert set(result["p50_ms"]) == set(result["rss_mb"]) == {"1", "2"}
    assert result["p50_ratio"] > 0 and result["model_mb"] > 0
    assert "| 2 sets |" in render_route_sets(result, "python -m bench.route_sets --sets 2")


@pytest.mark.slow
def test_conversation_grid_compares_the_declared_grid_with_a_finer_one(tmp_path: Path, embedder: Embedder) -> None:
    """The fine grid is a denser superset of the declared one; both are searched on labelled
    conversations, each choice scored through the service's path and against the other turn by
    turn, and the section renders every figure and a reading. A small fine grid here, untimed."""
    from bench.conversation_grid import FINE, compare_grids, declared, embedded
    from bench.conversation_grid import render as render_grid
    from devkit.serving import SHIPPED_ROUTES
    from indexer.conversations import load_conversations

    grid = declared()
    assert all(set(grid[k]) <= set(FINE[k]) and len(FINE[k]) > len(grid[k]) for k in grid)
    run_reindex(load_routes(SHIPPED_ROUTES), EdgeStore(tmp_path / "data"), embedder)
    store = EdgeStore(tmp_path / "data")
    index = store.open_version(store.live_version() or "")
    try:
        conversations = load_conversations(Path(__file__).parents[1] / "evals" / "shipped-conversations.jsonl")
        small = {**grid, "window": (4, 6), "switch": (0.005, *grid["switch"])}
        off_topic = ["What is a good banana bread recipe?", "Who won the football world cup in 2010?"]
        out = compare_grids(conversations, off_topic, embedder, index, fine=small)
    finally:
        index.close()
        store.close()
    # switch, context_weight, unrelated_switch and the standalone step
    assert out["declared"]["settings"] == 4 * 4 * 3 * 4 * 3 * 4
    assert out["fine"]["settings"] == 2 * 5 * 4 * 3 * 4 * 3 * 4
    for g in (out["declared"], out["fine"]):
        assert all(0.0 <= g[kind][t] <= 1.0 for kind in ("exact", "cv") for t in ("all", "switch", "objective"))
        assert g["chosen"]["window"] in g["grid"]["window"]
    for versus in (out["fine_chosen_vs_declared"], out["fine_best_vs_declared"]):
        assert versus["se"] >= 0.0 and abs(versus["gain"]) <= 1.0
    eval_row = {"dialogues": 10, "seconds": 2.0, "texts": 50, "embed_s": 0.5, "load_before": 0.1, "load_after": 0.2}
    result = {"command": "c", "load_before": 0.1, "load_after": 0.2, "grids": {"shipped": out}, "eval": {"x": eval_row}}
    text = render_grid(json.loads(json.dumps(result)))
    assert "| shipped | declared | 2,304 |" in text and "| shipped | fine | 5,760 |" in text
    assert "Reading:" in text and "23,400 texts" in text
    line = "embedding and searching 12 texts of the conversations  12/12 (100%)  0.4 s\n"
    assert embedded("embedding and searching 12 texts of the conversations  0/12 (0%)  0.0 s\n" + line) == (12, 0.4)
