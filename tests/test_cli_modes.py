"""The indexer CLI on conversations and in the LLM modes: eval and calibrate on a conversations
file, `eval --llm` against a loopback decision model, `calibrate --band`."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from devkit.fake_llm import Fail, FakeLLM, Formats, Reply
from devkit.routes_dirs import FAKE_KEY, FAKE_KEY_ENV
from devkit.serving import SHIPPED_ROUTES
from indexer.cli import main as indexer_main
from indexer.conversation_commands import _print_off_topic_sample
from router_core import Embedder, load_routes
from router_core.store import EdgeStore
from tests.test_conversation_eval import CHATS, write_conversations

EVALS = Path(__file__).resolve().parents[1] / "evals"


@pytest.fixture
def shipped(tmp_path: Path, embedder: Embedder) -> tuple[Path, Path]:
    """A private copy of the shipped routes, indexed into its own data directory."""
    routes, data = tmp_path / "routes", tmp_path / "data"
    shutil.copytree(SHIPPED_ROUTES, routes)
    args = ["reindex", "--routes", str(routes), "--data-dir", str(data), "--quiet", "--replace-configured-index"]
    assert indexer_main(args, out=io.StringIO(), embedder=embedder) == 0
    return routes, data


def run(args: list[str], embedder: Embedder) -> tuple[int, str]:
    out = io.StringIO()
    code = indexer_main(args, out=out, embedder=embedder)
    return code, out.getvalue()


def test_eval_on_conversations_reports_turn_types(
    tmp_path: Path, shipped: tuple[Path, Path], embedder: Embedder
) -> None:
    """`eval` on a conversations file scores every labelled turn with its history, by kind of turn,
    beside the last message alone, and writes the misrouted turns with context to JSON."""
    routes, data = shipped
    chats = write_conversations(tmp_path / "chats.jsonl", CHATS)
    report = tmp_path / "report.json"
    code, text = run(
        ["eval", str(chats), "--routes", str(routes), "--data-dir", str(data), "--quiet", "--json", str(report)],
        embedder,
    )
    assert code == 0, text
    assert "first of domain (4)" in text and "follow-up (5)" in text and "last message alone" in text
    body = json.loads(report.read_text())["report"]
    assert body["scores"]["all"] == 1.0
    assert body["scores"]["follow-up"] > body["last_message"]["follow-up"]
    assert body["reasons"]["context"] >= 1


def test_eval_on_conversations_scores_inserted_off_topic_turns_and_keeps_every_misrouted_turn(
    tmp_path: Path, shipped: tuple[Path, Path], embedder: Embedder
) -> None:
    """`eval CHATS --off-topic FILE` reports the inserted off-topic queries sent to the default
    route mid-chat beside alone; --json and --html hold every misrouted turn, not the first 50."""
    routes, data = shipped
    wrong = [[("user", "What is 15% of 200?", "coding")] for _ in range(60)]  # 60 turns labelled wrongly
    chats = write_conversations(tmp_path / "chats.jsonl", [*CHATS, *wrong])
    report, page = tmp_path / "report.json", tmp_path / "report.html"
    args = ["eval", str(chats), "--off-topic", str(EVALS / "shipped-val.jsonl"), "--json", str(report)]
    code, text = run(
        [*args, "--html", str(page), "--routes", str(routes), "--data-dir", str(data), "--quiet"], embedder
    )
    assert code == 0, text
    assert "off-topic queries inserted mid-conversation" in text and "(the same queries alone:" in text
    body = json.loads(report.read_text())["report"]
    assert len(body["misrouted"]) == 60 and "the first 10 of 60" in text
    off = body["off_topic"]
    assert off["inserted"] > 0 and 0.0 <= off["mid_chat"] <= 1.0 and 0.0 <= off["alone"] <= 1.0
    assert page.read_text().count("labelled coding, decided maths") == 60


def test_eval_on_conversations_reads_every_off_topic_file_once(
    tmp_path: Path, shipped: tuple[Path, Path], embedder: Embedder
) -> None:
    """`--off-topic` repeated inserts the distinct oos queries of all its files: the shipped
    validation file's split in two overlapping halves gives the same figures as the whole."""
    routes, data = shipped
    chats = write_conversations(tmp_path / "chats.jsonl", CHATS)
    lines = (EVALS / "shipped-val.jsonl").read_text().splitlines()
    oos = [line for line in lines if json.loads(line)["label"] == "oos"]
    assert len(oos) >= 4
    half = len(oos) // 2
    first, second = tmp_path / "oos-a.jsonl", tmp_path / "oos-b.jsonl"
    first.write_text("\n".join(oos[: half + 1]) + "\n")
    second.write_text("\n".join(oos[half:]) + "\n")  # one query in both
    where = ["--routes", str(routes), "--data-dir", str(data), "--quiet"]
    figures = []
    for files in ([EVALS / "shipped-val.jsonl"], [first, second]):
        report = tmp_path / f"report-{len(files)}.json"
        flags = [arg for f in files for arg in ("--off-topic", str(f))]
        code, text = run(["eval", str(chats), *flags, "--json", str(report), *where], embedder)
        assert code == 0, text
        figures.append(json.loads(report.read_text())["report"]["off_topic"])
    assert figures[0]["inserted"] == len(oos)
    assert figures[1] == figures[0]


def test_calibrate_on_conversations_refuses_a_test_file_as_off_topic(
    tmp_path: Path, shipped: tuple[Path, Path], embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    """Off-topic queries named like a test split (the second --off-topic here) are refused as the
    conversations file would be: exit 2 naming it, nothing written."""
    routes, data = shipped
    chats = write_conversations(tmp_path / "chats.jsonl", CHATS)
    test_file = tmp_path / "clinc-test.jsonl"
    shutil.copy(EVALS / "shipped-val.jsonl", test_file)
    before = {f.name: f.read_bytes() for f in routes.iterdir()}
    flags = ["--off-topic", str(EVALS / "shipped-val.jsonl"), "--off-topic", str(test_file), "--write"]
    code, _ = run(["calibrate", str(chats), *flags, "--routes", str(routes), "--data-dir", str(data)], embedder)
    assert code == 2
    err = capsys.readouterr().err
    assert "clinc-test.jsonl" in err and "looks like a test file" in err
    assert {f.name: f.read_bytes() for f in routes.iterdir()} == before


def test_calibrate_says_how_well_the_off_topic_bar_is_known() -> None:
    """One binomial standard error of the off-topic share, and the advice to add queries only
    when they are fewer than 200."""
    few, many = io.StringIO(), io.StringIO()
    _print_off_topic_sample(100, 0.92, few)
    _print_off_topic_sample(1000, 0.92, many)
    assert "100 queries inserted; their share is known to about +/-2.7%" in few.getvalue()
    assert "few: " in few.getvalue() and "--off-topic (repeatable)" in few.getvalue()
    assert "+/-0.9%" in many.getvalue() and "few: " not in many.getvalue()


def test_eval_refuses_off_topic_for_single_queries(shipped: tuple[Path, Path], embedder: Embedder) -> None:
    """--off-topic on a file of single queries is an error naming the option, never ignored."""
    routes, data = shipped
    args = ["eval", str(EVALS / "shipped-val.jsonl"), "--off-topic", str(EVALS / "shipped-val.jsonl")]
    code, _ = run([*args, "--routes", str(routes), "--data-dir", str(data), "--quiet"], embedder)
    assert code == 2


@pytest.mark.slow
def test_calibrate_on_conversations_writes_the_conversation_section(
    tmp_path: Path, shipped: tuple[Path, Path], embedder: Embedder
) -> None:
    """`calibrate CHATS --off-topic FILE --write` searches the rule, keeps off-topic turns out, and writes it."""
    routes, data = shipped
    chats = write_conversations(tmp_path / "chats.jsonl", CHATS)
    args = ["calibrate", str(chats), "--off-topic", str(EVALS / "shipped-val.jsonl"), "--write"]
    code, text = run([*args, "--routes", str(routes), "--data-dir", str(data), "--quiet"], embedder)
    assert code == 0, text
    assert "chosen" in text and "settings searched" in text and "off-topic" in text
    assert "chosen, cross-validated (5 folds)" in text and "chosen, in-sample" in text
    inserted = len(
        {
            json.loads(line)["text"]
            for line in (EVALS / "shipped-val.jsonl").read_text().splitlines()
            if json.loads(line)["label"] == "oos"
        }
    )
    assert f"off-topic: {inserted} queries inserted" in text and "few: " in text  # fewer than 200
    written = yaml.safe_load((routes / "_router.yaml").read_text())["conversation"]
    table = load_routes(routes)
    assert table.conversation.window == written["window"]
    assert "next: re-index" in text
    # the file's follow-ups are written beside it, and served once re-indexed
    assert "and of 350?" in table.follow_ups and "What is 15% of 200?" not in table.follow_ups
    assert f"wrote the {len(table.follow_ups)} follow-ups of chats.jsonl" in text
    assert f"follow-ups: {len(table.follow_ups)} learnt from the file" in text
    code, text = run(["reindex", "--routes", str(routes), "--data-dir", str(data), "--quiet"], embedder)
    assert code == 0, text
    store = EdgeStore(data)
    index = store.open_version(store.live_version() or "")
    try:
        assert index.table.follow_ups == table.follow_ups
        assert index.follow_ups is not None and len(index.follow_ups) == len(table.follow_ups)
    finally:
        index.close()
        store.close()


def test_eval_llm_runs_the_decision_model_for_real(
    tmp_path: Path, shipped: tuple[Path, Path], embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`eval FILE --llm --mode llm` asks the decision model about every query (a loopback
    OpenAI-compatible server), routes by its answers and reports calls and tokens."""
    routes, data = shipped
    monkeypatch.setenv(FAKE_KEY_ENV, FAKE_KEY)
    with FakeLLM() as fake:
        fake.always("decider", Reply('{"route": "maths"}'))
        monkeypatch.setenv("ROUTER_DECIDER__MODEL", "decider")
        monkeypatch.setenv("ROUTER_DECIDER__BASE_URL", fake.url)
        monkeypatch.setenv("ROUTER_DECIDER__API_KEY_ENV", FAKE_KEY_ENV)
        queries = tmp_path / "q.jsonl"
        queries.write_text(
            "\n".join(json.dumps({"text": t, "label": "maths"}) for t in ("what is 7 times 6", "solve x + 1 = 3"))
            + "\n"
        )
        report = tmp_path / "llm.json"
        args = ["eval", str(queries), "--llm", "--mode", "llm", "--json", str(report)]
        code, text = run([*args, "--routes", str(routes), "--data-dir", str(data), "--quiet"], embedder)
        assert code == 0, text
        assert len(fake.calls("decider")) == 2
    llm = json.loads(report.read_text())["llm"]
    assert (llm["asked"], llm["calls"], llm["outcomes"]) == (2, 2, {"chosen": 2})
    assert (llm["prompt_tokens"], llm["completion_tokens"]) == (22, 14)  # the stand-in reports 11 + 7 per call
    assert "in-scope accuracy" in text and "tokens (prompt + completion)" in text
    assert FAKE_KEY not in text


def _two_maths_queries(path: Path) -> Path:
    path.write_text(
        "\n".join(json.dumps({"text": t, "label": "maths"}) for t in ("what is 7 times 6", "solve x + 1 = 3")) + "\n"
    )
    return path


def _decider_env(monkeypatch: pytest.MonkeyPatch, fake: FakeLLM) -> None:
    monkeypatch.setenv(FAKE_KEY_ENV, FAKE_KEY)
    monkeypatch.setenv("ROUTER_DECIDER__MODEL", "decider")
    monkeypatch.setenv("ROUTER_DECIDER__BASE_URL", fake.url)
    monkeypatch.setenv("ROUTER_DECIDER__API_KEY_ENV", FAKE_KEY_ENV)
    monkeypatch.setenv("ROUTER_DECIDER__RETRIES", "0")
    monkeypatch.setenv("ROUTER_DECIDER__TIMEOUT_S", "5")


def test_eval_llm_reports_the_structured_output_used(
    tmp_path: Path, shipped: tuple[Path, Path], embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`eval --llm` against a server refusing json_schema with 500 (llama-cpp-python) reports the
    answers as json_object and why json_schema is not used, in text and JSON."""
    routes, data = shipped
    report = tmp_path / "llm.json"
    with FakeLLM() as fake:
        fake.always("decider", Formats("maths", refuse=("json_schema",), status=500))
        _decider_env(monkeypatch, fake)
        queries = _two_maths_queries(tmp_path / "q.jsonl")
        args = ["eval", str(queries), "--llm", "--mode", "llm", "--json", str(report), "--concurrency", "1"]
        code, text = run([*args, "--routes", str(routes), "--data-dir", str(data), "--quiet"], embedder)
    assert code == 0, text
    assert "structured output (answered calls)" in text and "json_object 2" in text
    assert "json_schema refused: HTTP 500" in text
    llm = json.loads(report.read_text())["llm"]
    assert (llm["outcomes"], llm["output_modes"]) == ({"chosen": 2}, {"json_object": 2})
    assert "json_schema refused" in llm["output_mode_refused"]


def test_eval_llm_refuses_an_accuracy_when_most_answers_failed(
    tmp_path: Path,
    shipped: tuple[Path, Path],
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`eval --llm` whose decision model fails on most questions prints the LLM step and its
    failures, then exits non-zero saying why, with no accuracy and no report written."""
    routes, data = shipped
    report = tmp_path / "llm.json"
    with FakeLLM() as fake:
        fake.always("decider", Fail(500, "the model is still loading"))
        _decider_env(monkeypatch, fake)
        queries = _two_maths_queries(tmp_path / "q.jsonl")
        args = ["eval", str(queries), "--llm", "--mode", "llm", "--json", str(report)]
        code, text = run([*args, "--routes", str(routes), "--data-dir", str(data), "--quiet"], embedder)
    error = capsys.readouterr().err
    assert code == 1
    assert "outcomes" in text and "error 2" in text and "the model is still loading" in text
    assert "failed on 2 of 2 questions" in error and "No accuracy is reported" in error
    assert "accuracy (fallback as a class)" not in text and not report.exists()


def test_eval_llm_needs_an_llm_mode_and_a_model(shipped: tuple[Path, Path], embedder: Embedder) -> None:
    """`--llm` on an embedding-mode route set, or without a decision model, is refused naming the fix."""
    routes, data = shipped
    code, _ = run(
        ["eval", str(EVALS / "shipped-test.jsonl"), "--llm", "--routes", str(routes), "--data-dir", str(data)],
        embedder,
    )
    assert code == 2


@pytest.mark.slow
def test_calibrate_band_chooses_a_band_within_the_budget(
    tmp_path: Path, shipped: tuple[Path, Path], embedder: Embedder
) -> None:
    """`calibrate VAL --band --budget B --write` prints simulated figures and writes the band into the llm section."""
    routes, data = shipped
    report = tmp_path / "cal.json"
    args = [
        "calibrate",
        str(EVALS / "shipped-val.jsonl"),
        "--band",
        "--budget",
        "0.2",
        "--write",
        "--json",
        str(report),
    ]
    code, text = run([*args, "--routes", str(routes), "--data-dir", str(data), "--quiet"], embedder)
    assert code == 0, text
    assert "SIMULATED" in text
    band = json.loads(report.read_text())["band"]
    assert band["simulated"] is True and band["chosen"]["escalated"] <= 0.2
    llm = yaml.safe_load((routes / "_router.yaml").read_text())["llm"]
    assert llm["band_above"] == band["chosen"]["llm"]["band_above"]
