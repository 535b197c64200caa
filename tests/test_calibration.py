"""Calibration: the numpy engine matches decide(), the objective and search, writing back."""

from __future__ import annotations

import io
import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from indexer.calibration import CalibrationGrid, calibrate, oos_weight_for
from indexer.cli import main as indexer_main
from indexer.labelled import load_labelled
from indexer.routes_writer import write_decision_params
from indexer.text_report import print_calibration
from router_core import DecisionParams, Embedder, Neighbour, load_routes, run_reindex
from router_core.decision import decide, decide_many
from router_core.engine import FALLBACK, predict
from router_core.neighbours import NeighbourArrays
from router_core.params import ThresholdMode
from router_core.store import EdgeStore
from tests.test_evaluation import LABELLED, write_jsonl, write_tiny_routes

SHIPPED_VAL = Path(__file__).resolve().parents[1] / "evals" / "shipped-val.jsonl"
SMALL_GRID = CalibrationGrid(
    values={"k": (1, 3, 5), "threshold": tuple(round(0.3 + 0.05 * i, 2) for i in range(11)), "margin": (0.0, 0.2)},
    route_offsets=(-0.1, -0.05, 0.0, 0.05, 0.1),
)


def random_neighbours(rng: random.Random, queries: int, routes: list[str], low: float = 0.2) -> list[list[Neighbour]]:
    """Neighbour lists with many exact ties (similarities rounded to one or two decimals)."""
    return [
        [
            Neighbour(f"t{q}-{j}", rng.choice(routes), round(rng.uniform(low, 0.9), rng.choice([1, 2, 6])))
            for j in range(rng.randint(0, 8))
        ]
        for q in range(queries)
    ]


@pytest.mark.parametrize("mode", ["neighbour", "winner"])
def test_a_decision_does_not_depend_on_the_batch_it_is_decided_in(mode: ThresholdMode) -> None:
    """decide_many on a batch (as the service and calibration run it) gives each query the decision it gets alone."""
    rng = random.Random(7)
    # Names that are prefixes of one another, and similarities down to -0.5 (votes weighted by
    # similarity can then sum to zero or less), are where a name order or a division can differ.
    routes = ["a", "ab", "abc", "b"]
    neighbours = random_neighbours(rng, 300, routes, low=-0.5)
    arrays = NeighbourArrays.build(neighbours)
    for _ in range(40):
        params = DecisionParams(
            k=rng.randint(1, 8),
            threshold=rng.uniform(-0.3, 0.8),
            route_thresholds={r: rng.uniform(0.2, 0.8) for r in routes if rng.random() < 0.3},
            margin=rng.choice([0.0, 0.1, 0.3]),
            tie_break=rng.choice(["sum", "max"]),
            vote=rng.choice(["count", "similarity"]),
            threshold_mode=mode,
        )
        batch = decide_many(neighbours, params)
        alone = [decide(n, params) for n in neighbours]
        assert batch == alone, params
        ids = [FALLBACK if d.fallback else arrays.route_id(d.route) for d in batch]
        assert predict(arrays, params).tolist() == ids, params


def test_winner_mode_thresholds_the_winner_not_each_neighbour() -> None:
    """Neighbour mode drops weak neighbours before voting; winner mode lets them vote, then rejects a weak winner."""
    hits = [Neighbour("x", "a", 0.6), Neighbour("y", "b", 0.45), Neighbour("z", "b", 0.44)]
    params = DecisionParams(k=3, threshold=0.5)
    assert decide(hits, params).route == "a"
    weak = decide(hits, replace(params, threshold_mode="winner"))
    assert weak.fallback and weak.reason == "below_threshold"
    assert weak.votes[0].route == "b" and weak.votes[0].count == 2
    assert (
        decide(hits, DecisionParams(k=3, threshold=0.5, route_thresholds={"b": 0.4}, threshold_mode="winner")).route
        == "b"
    )


def synthetic(rng: random.Random, per_route: int, oos: int) -> tuple[list[list[Neighbour]], list[str]]:
    """In-scope queries sit near their route (0.55-0.9); out-of-scope ones lower (0.3-0.6)."""
    neighbours, labels = [], []
    routes = ["alpha", "beta", "gamma"]
    for route in routes:
        for _ in range(per_route):
            others = [r for r in routes if r != route]
            row = [Neighbour(f"{route}{j}", route, rng.uniform(0.55, 0.9)) for j in range(3)]
            row += [Neighbour(f"x{j}", rng.choice(others), rng.uniform(0.3, 0.6)) for j in range(3)]
            neighbours.append(row)
            labels.append(route)
    for _ in range(oos):
        neighbours.append([Neighbour(f"o{j}", rng.choice(routes), rng.uniform(0.3, 0.6)) for j in range(6)])
        labels.append("oos")
    return neighbours, labels


def test_calibration_finds_a_separating_threshold_and_beats_the_baseline() -> None:
    """On separable data the chosen setting rejects out-of-scope queries and keeps in-scope ones."""
    neighbours, labels = synthetic(random.Random(1), per_route=30, oos=30)
    base = DecisionParams(k=5, threshold=0.2, default_route="default")
    result = calibrate(neighbours, labels, base, grid=SMALL_GRID)
    assert len(result.table) == SMALL_GRID.size
    assert result.objective >= result.baseline.objective
    assert result.baseline.fallback_recall < 0.5
    assert result.scores.in_scope_accuracy > 0.95
    assert result.scores.fallback_recall > 0.9
    assert 0.5 <= result.params.threshold <= 0.6
    assert result.engine_mismatches == 0
    # The objective is (1 - share) * in-scope accuracy + share * fallback recall.
    s = result.scores
    assert result.objective == pytest.approx(0.8 * s.in_scope_accuracy + 0.2 * s.fallback_recall)
    assert [v.name for v in result.variants][:2] == [
        "given parameters",
        "majority vote + threshold",
    ]
    assert json.loads(json.dumps(result.to_dict(table_rows=5)))["table_size"] == SMALL_GRID.size


def test_out_of_scope_weight_moves_the_threshold() -> None:
    """Weighing out-of-scope errors more raises the chosen threshold, and with it fallback recall."""
    neighbours, labels = synthetic(random.Random(2), per_route=30, oos=10)
    # In-scope similarities 0.40-0.75 overlap the out-of-scope ones (0.30-0.60): the weight decides.
    neighbours = [
        row if label == "oos" else [replace(n, similarity=n.similarity - 0.15) for n in row]
        for row, label in zip(neighbours, labels, strict=True)
    ]
    base = DecisionParams(k=3, threshold=0.45)
    grid = replace(SMALL_GRID, route_thresholds=False)
    light = calibrate(neighbours, labels, base, oos_share=0.05, grid=grid)
    heavy = calibrate(neighbours, labels, base, oos_share=0.6, grid=grid)
    assert heavy.params.threshold > light.params.threshold
    assert heavy.scores.fallback_recall > light.scores.fallback_recall
    assert heavy.oos_share == pytest.approx(0.6)
    assert light.oos_share == pytest.approx(0.05)
    explicit = calibrate(neighbours, labels, base, oos_weight=1.0, grid=grid)
    assert explicit.oos_weight == 1.0
    assert explicit.oos_share == pytest.approx(10 / 100)
    assert oos_weight_for(3000, 100, 0.2) == pytest.approx(7.5)


def test_per_route_threshold_needs_support_and_held_out_gain() -> None:
    """A route whose out-of-scope look-alikes score high gets a higher threshold only with enough support."""
    rng = random.Random(3)
    neighbours, labels = synthetic(rng, per_route=40, oos=0)
    for _ in range(40):  # out-of-scope queries that look like gamma (0.6-0.65), others stay low
        row = [Neighbour(f"g{j}", "gamma", rng.uniform(0.6, 0.65)) for j in range(3)]
        neighbours.append([*row, Neighbour("o", "alpha", 0.3)])
        labels.append("oos")
    for row, label in zip(neighbours, labels, strict=True):
        if label == "gamma":
            for j in range(3):
                row[j] = replace(row[j], similarity=rng.uniform(0.7, 0.9))
    base = DecisionParams(k=3, threshold=0.5)
    grid = replace(
        SMALL_GRID,
        values={"threshold": (0.5,), "margin": (0.0,), "k": (3,)},
        min_route_support=10,
        route_offsets=(0.0, 0.1, 0.2),
    )
    result = calibrate(neighbours, labels, base, grid=grid)
    assert result.route_thresholds_kept
    assert result.heldout_gain > 0
    assert result.params.route_thresholds["gamma"] == pytest.approx(0.5 + round(0.2 * 40 / 50, 2))
    assert result.scores.fallback_recall == 1.0
    assert result.scores.in_scope_accuracy == 1.0
    assert set(result.params.route_thresholds) == {"gamma"}
    strict = calibrate(neighbours, labels, base, grid=replace(grid, min_route_support=100))
    assert strict.params.route_thresholds == {}


def test_write_back_keeps_comments_and_reloads(tmp_path: Path) -> None:
    """Writing parameters changes only their lines: comments and other keys survive, thresholds come and go."""
    routes = write_tiny_routes(tmp_path / "routes")
    (routes / "music.yaml").write_text(
        (routes / "music.yaml").read_text().replace("name: music\n", "name: music\nthreshold: 0.3  # old\n")
    )
    (routes / "banking.yaml").write_text(
        yaml.safe_dump({**yaml.safe_load((routes / "banking.yaml").read_text())}, default_flow_style=True)
    )
    params = DecisionParams(
        k=7,
        threshold=0.52,
        margin=0.1,
        vote="similarity",
        tie_break="max",
        route_thresholds={"weather": 0.6, "banking": 0.55},
    )
    report = write_decision_params(routes, params)
    table = load_routes(routes)
    assert table.params == replace(params, default_route="default")
    router_text = (routes / "_router.yaml").read_text()
    assert router_text.startswith("# router defaults (hand-written comment)\n")
    assert "k: 7\n" in router_text
    assert "vote: similarity\n" in router_text
    assert (routes / "weather.yaml").read_text().startswith("# the weather route\nname: weather\nthreshold: 0.6\n")
    assert "threshold" not in (routes / "music.yaml").read_text()
    assert "# the music route" in (routes / "music.yaml").read_text()
    assert report.rewritten == ("banking.yaml",)
    assert write_decision_params(routes, params).changed == ()


def test_calibrate_refuses_the_test_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file named like *test* is refused (exit 2) before anything is loaded, unless explicitly allowed."""
    path = write_jsonl(tmp_path / "clinc_test.jsonl", LABELLED)
    code = indexer_main(["calibrate", str(path), "--routes", str(tmp_path), "--data-dir", str(tmp_path)])
    assert code == 2
    assert "never tune on the test set" in capsys.readouterr().err


@pytest.mark.slow
def test_calibrate_command_writes_parameters_for_the_next_index(
    tmp_path: Path, routes_dir: Path, embedder: Embedder
) -> None:
    """`calibrate --write` stores the chosen parameters in the routes files and says to re-index: the shipped
    routes with a threshold far too low (0.1, nothing falls back), which the first rule beats beyond noise."""
    routes = routes_dir
    router = routes / "_router.yaml"
    router.write_text(router.read_text().replace("threshold: 0.36", "threshold: 0.1"))
    data = tmp_path / "data"
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    # "latest" holds "test" but is not named like a test split: accepted.
    val = write_jsonl(tmp_path / "latest.jsonl", [(q.text, q.label) for q in load_labelled(SHIPPED_VAL)])
    out = io.StringIO()
    json_path = tmp_path / "cal.json"
    code = indexer_main(
        [
            "calibrate",
            str(val),
            "--routes",
            str(routes),
            "--data-dir",
            str(data),
            "--quiet",
            "--write",
            "--oos-share",
            "0.3",
            "--json",
            str(json_path),
            "--html",
            str(tmp_path / "cal.html"),
        ],
        out=out,
        embedder=embedder,
    )
    assert code == 0
    text = out.getvalue()
    assert "0.70 x in-scope accuracy + 0.30 x fallback recall" in text
    assert "next: re-index" in text
    variants = json.loads(json_path.read_text())["result"]["variants"]
    first = next(v for v in variants if v["name"] == "majority vote + threshold")
    assert first["adopted"] and first["gain"] >= 2 * first["standard_error"] > 0
    chosen = json.loads(json_path.read_text())["result"]["params"]
    assert chosen["threshold"] > 0.1
    table = load_routes(routes)
    assert table.params.k == chosen["k"]
    assert table.params.threshold == pytest.approx(chosen["threshold"])
    assert table.params.vote == chosen["vote"]
    assert table.params.margin == pytest.approx(chosen["margin"])
    assert table.params.tie_break == chosen["tie_break"]
    assert table.params.threshold_mode == chosen["threshold_mode"]
    html = (tmp_path / "cal.html").read_text()
    assert "<svg" in html
    assert f"<td>threshold_mode</td><td>{chosen['threshold_mode']}</td>" in html
    assert np.isclose(json.loads(json_path.read_text())["result"]["oos_share"], 0.3)


@pytest.mark.parametrize("name", ["test.jsonl", "shipped-test.jsonl", "clinc_testset.jsonl"])
def test_calibrate_refuses_a_file_named_like_a_test_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Tuning on the test split is refused (exit 2, naming the file) unless explicitly allowed."""
    routes = write_tiny_routes(tmp_path / "routes")
    labelled = write_jsonl(tmp_path / name, LABELLED)
    args = ["calibrate", str(labelled), "--routes", str(routes), "--data-dir", str(tmp_path / "d")]
    assert indexer_main(args, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert f"{name} looks like a test file" in err
    assert "--i-know-this-is-test" in err


def test_the_first_rule_is_adopted_only_beyond_noise() -> None:
    """A first rule gaining 12 points with a standard error of 6 (12 out-of-scope queries) is not adopted: the given
    parameters stand, nothing counts as changed, the held-out estimate is zero and the report says so."""
    rng = random.Random(5)
    neighbours, labels = synthetic(rng, per_route=30, oos=12)
    for row in neighbours[:15]:
        for j in range(3):
            row[j] = replace(row[j], similarity=rng.uniform(0.35, 0.5))
    base = DecisionParams(k=5, threshold=0.2)
    result = calibrate(neighbours, labels, base, grid=replace(SMALL_GRID, min_route_support=5), estimate_heldout=True)
    first = result.variants[1]
    assert first.name == "majority vote + threshold"
    assert first.gain > 0.1 and first.gain < 2 * first.standard_error
    assert not first.adopted and first.verdict == "not adopted: within noise"
    assert not any(v.adopted for v in result.variants)
    assert result.params == base and not result.changed
    assert result.objective == pytest.approx(result.baseline.objective)
    assert result.heldout_total_gain == 0.0
    out = io.StringIO()
    print_calibration(result, out)
    assert "nothing beat the given parameters by that test: they stand" in out.getvalue()
    assert "chosen:" not in out.getvalue()


def test_holding_the_threshold_searches_the_rest_and_keeps_per_route_thresholds() -> None:
    """hold_threshold (no out-of-scope query to set it): every setting tried keeps the given threshold, its mode and
    per-route thresholds, so fallbacks never become fewer than the given parameters' in neighbour mode."""
    neighbours, labels = synthetic(random.Random(3), per_route=30, oos=0)
    base = DecisionParams(k=5, threshold=0.75, route_thresholds={"alpha": 0.7})
    result = calibrate(neighbours, labels, base, grid=SMALL_GRID, hold_threshold=True)
    assert result.threshold_held and result.out_of_scope == 0
    assert {(t.params.threshold, t.params.threshold_mode) for t in result.table} == {(0.75, "neighbour")}
    assert all(t.params.route_thresholds == {"alpha": 0.7} for t in result.table)
    assert result.params.threshold == 0.75 and result.params.route_thresholds == {"alpha": 0.7}
    assert "+ per-route thresholds" not in [v.name for v in result.variants]
    fallbacks = [sum(d.fallback for d in decide_many(neighbours, p)) for p in (base, result.params)]
    assert fallbacks[1] >= fallbacks[0] > 0
    free = calibrate(neighbours, labels, base, grid=SMALL_GRID)
    assert free.params.threshold < 0.75  # what holding prevents: on in-scope queries alone it falls


def test_variant_table_shows_gains_over_the_baseline_and_held_out_figures() -> None:
    """The first adopted row gains over the given parameters, rows that found nothing new say so instead of
    repeating a setting, per-route thresholds show their held-out gain apart from the in-sample one, and the
    held-out estimate is the whole search fitted on one half and scored on the other."""
    rng = random.Random(5)
    neighbours, labels = synthetic(rng, per_route=30, oos=30)
    for row in neighbours[:15]:  # in-scope queries that look out of scope: some fall back
        for j in range(3):
            row[j] = replace(row[j], similarity=rng.uniform(0.35, 0.5))
    base = DecisionParams(k=5, threshold=0.2)
    grid = replace(SMALL_GRID, min_route_support=5)
    result = calibrate(neighbours, labels, base, grid=grid, estimate_heldout=True)
    given, first, *rest = result.variants
    assert given.name == "given parameters" and given.scores == result.baseline
    assert first.adopted and first.gain == pytest.approx(first.scores.objective - result.baseline.objective)
    assert first.gain > 0.05
    assert result.gain == pytest.approx(result.objective - result.baseline.objective)
    repeated = [v for v in rest if not v.new and v.name != "+ per-route thresholds"]
    assert repeated and all(v.verdict == "nothing better" or v.verdict.startswith("same as") for v in repeated)
    [per_route] = [v for v in rest if v.name == "+ per-route thresholds"]
    assert per_route.heldout_gain == result.heldout_gain

    out = io.StringIO()
    print_calibration(result, out)
    text = out.getvalue()
    assert f"given parameters   objective {100 * result.baseline.objective:.1f}%" in text
    assert f"calibrated         objective {100 * result.objective:.1f}% on this file" in text
    assert result.heldout_total_gain is not None and result.heldout_total_standard_error is not None
    estimate = f"{100 * result.heldout_total_gain:+.2f} ± {100 * result.heldout_total_standard_error:.2f}"
    assert f"held-out estimate  {estimate} points" in text
    rows = {line.split("  ")[0]: line for line in text.splitlines() if line.startswith(("+ ", "majority"))}
    for v in repeated:
        assert "(as above)" in rows[v.name] and "k=" not in rows[v.name]
    assert f"{100 * result.heldout_gain:+.2f} ± {100 * result.heldout_standard_error:.2f}" in rows[per_route.name]
    assert "gain in-sample" in text and "gain held-out" in text

    # Fallback precision at the declared share: out-of-scope fallbacks weigh like the objective's.
    decisions = decide_many(neighbours, result.params)
    caught = sum(d.fallback and label == "oos" for d, label in zip(decisions, labels, strict=True))
    wrong = sum(d.fallback and label != "oos" for d, label in zip(decisions, labels, strict=True))
    assert wrong > 0
    w = result.oos_weight
    assert result.scores.fallback_precision == pytest.approx(w * caught / (w * caught + wrong))
    assert result.scores.fallback_precision_in_file == pytest.approx(caught / (caught + wrong))

    # The held-out estimate, rebuilt from the public calibrate() on each half.
    seen: dict[str, int] = {}
    fold = []
    for label in labels:
        fold.append(seen.get(label, 0) % 2)
        seen[label] = seen.get(label, 0) + 1
    weight = {label: (w if label == "oos" else 1.0) for label in labels}
    total = sum(weight[label] for label in labels)
    gained = 0.0
    for held in (0, 1):
        fit = [i for i, f in enumerate(fold) if f != held]
        test = [i for i, f in enumerate(fold) if f == held]
        half = calibrate([neighbours[i] for i in fit], [labels[i] for i in fit], base, oos_weight=w, grid=grid)
        for i in test:
            tuned, given_d = decide(neighbours[i], half.params), decide(neighbours[i], base)
            right = labels[i] == ("oos" if tuned.fallback else tuned.route)
            was = labels[i] == ("oos" if given_d.fallback else given_d.route)
            gained += weight[labels[i]] * (right - was)
    assert result.heldout_total_gain == pytest.approx(gained / total)
