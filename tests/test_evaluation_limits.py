"""POST /v1/evaluate under hostile use: each labelled query is charged in the rate limit, one
caller's long evaluation neither refuses nor holds up another's, malformed lines are a 400 naming
the line (in the service and the CLI alike), and the evals directory is read like routes/."""

from __future__ import annotations

import io
import json
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from devkit.serving import SHIPPED_EVALS, settings_for
from indexer.cli import main as indexer_main
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from service.security import AuthSettings
from tests.conftest import ServiceFactory
from tests.test_evaluation import LABELLED, write_jsonl, write_tiny_routes

KEY_A, KEY_B = "evaluating-key-a", "evaluating-key-b"
GOOD = json.dumps({"text": "How do I use async with Rust?", "label": "coding"})


def lines(*rows: str) -> str:
    return "\n".join(rows) + "\n"


@pytest.fixture
def serve_evals(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> Callable[..., str]:
    """A service on a fresh index of the shipped routes, with the given settings."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)

    def start(**overrides: object) -> str:
        return start_service(settings_for(routes_dir, data, **overrides))

    return start


# -- item 9: charged per query, one evaluation per caller ---------------------------------------
def test_the_rate_limit_counts_each_labelled_query(serve_evals: Callable[..., str]) -> None:
    """With 10 queries a minute, two evaluations of 8 labelled queries go through (the second on
    credit) and the caller then waits: an evaluation is charged what it scores, not one request."""
    url = serve_evals(auth=AuthSettings(api_keys=[SecretStr(KEY_A)], rate_per_minute=10))
    jsonl = lines(*(json.dumps({"text": f"what is {i} percent of 80", "label": "maths"}) for i in range(8)))
    with httpx.Client(base_url=url, timeout=60, headers={"authorization": f"Bearer {KEY_A}"}) as c:
        assert c.post("/v1/evaluate", json={"jsonl": jsonl}).status_code == 200
        assert c.post("/v1/evaluate", json={"jsonl": jsonl}).status_code == 200
        limited = c.post("/v1/classify", json={"query": "What is 15% of 200?"})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 30


def test_a_conversations_file_is_charged_per_text_it_embeds(serve_evals: Callable[..., str]) -> None:
    """A conversations file is charged one query per text the routing pipeline embeds for its
    labelled turns (window messages and context texts), not one per labelled turn: with 5 queries
    a minute, 3 labelled turns that need 7 texts leave the caller waiting (3 would not)."""
    url = serve_evals(auth=AuthSettings(api_keys=[SecretStr(KEY_A)], rate_per_minute=5))
    messages = [
        {"role": "user", "content": "What is 15% of 200?", "route": "maths"},
        {"role": "assistant", "content": "15% of 200 is 30."},
        {"role": "user", "content": "and of 350?", "route": "maths"},
        {"role": "assistant", "content": "52.5."},
        {"role": "user", "content": "round it please", "route": "maths"},
    ]
    jsonl = json.dumps({"id": "c1", "messages": messages}) + "\n"
    with httpx.Client(base_url=url, timeout=60, headers={"authorization": f"Bearer {KEY_A}"}) as c:
        evaluated = c.post("/v1/evaluate", json={"jsonl": jsonl})
        assert evaluated.status_code == 200, evaluated.text
        assert evaluated.json()["report"]["scores"]["counts"]["all"] == 3
        limited = c.post("/v1/classify", json={"query": "What is 15% of 200?"})
        assert limited.status_code == 429


@pytest.mark.slow
def test_a_long_evaluation_neither_refuses_nor_holds_up_another_callers(serve_evals: Callable[..., str]) -> None:
    """Caller A evaluates 1,500 new queries; while it runs, A's second evaluation is 409, and
    caller B's evaluation of 5 queries is answered (not 409) long before A's is."""
    url = serve_evals(auth=AuthSettings(api_keys=[SecretStr(KEY_A), SecretStr(KEY_B)]))
    rng = random.Random()
    seed = rng.randrange(1_000_000)
    words = ["invoice", "rust", "borrow", "percentage", "quota", "discount", "deploy", "pipeline", "refund"]
    big = lines(
        *(
            json.dumps({"text": f"case {seed}-{i}: " + " ".join(rng.choice(words) for _ in range(60)), "label": "oos"})
            for i in range(1500)
        )
    )
    finished: dict[str, float] = {}
    statuses: dict[str, int] = {}

    def evaluate(name: str, key: str, jsonl: str) -> None:
        r = httpx.post(
            f"{url}/v1/evaluate", json={"jsonl": jsonl}, headers={"authorization": f"Bearer {key}"}, timeout=600
        )
        statuses[name] = r.status_code
        finished[name] = time.monotonic()

    a = threading.Thread(target=evaluate, args=("a", KEY_A, big))
    a.start()
    time.sleep(1.0)  # A's evaluation is under way
    assert a.is_alive(), "the long evaluation ended too soon to test anything"
    again = httpx.post(
        f"{url}/v1/evaluate", json={"jsonl": lines(GOOD)}, headers={"authorization": f"Bearer {KEY_A}"}, timeout=600
    )
    assert again.status_code == 409 and "of yours" in again.json()["detail"]
    small = lines(*(json.dumps({"text": f"what is {i} percent of {seed}", "label": "maths"}) for i in range(5)))
    evaluate("b", KEY_B, small)
    a.join(timeout=600)
    assert statuses == {"a": 200, "b": 200}
    assert finished["b"] < finished["a"], "the small evaluation waited for the long one"


# -- item 10: malformed lines --------------------------------------------------------------------
NESTED = "[" * 100_000 + "]" * 100_000
HUGE_NUMBER = '{"text": "hi", "label": "coding", "n": ' + "9" * 5000 + "}"
LONE_SURROGATE = '{"text": "broken \\ud800 text", "label": "coding"}'


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (NESTED, "posted lines line 2: invalid JSON: nested too deeply"),
        (HUGE_NUMBER, "posted lines line 2: invalid JSON: a number too long to read"),
        (LONE_SURROGATE, "posted lines line 2: 'text' holds a lone surrogate (\\ud800)"),
    ],
    ids=["nested-100000-deep", "5000-digit-number", "lone-surrogate"],
)
def test_malformed_lines_are_a_400_naming_the_line(client: httpx.Client, bad: str, needle: str) -> None:
    """A line nested 100,000 deep, a 5,000-digit number, a lone surrogate in a text: a 400
    problem naming the line and the reason (they were 500s), and the service answers on."""
    r = client.post("/v1/evaluate", json={"jsonl": lines(GOOD, bad)})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", r.text
    assert needle in r.json()["detail"]
    assert client.post("/v1/evaluate", json={"jsonl": lines(GOOD)}).status_code == 200


def test_a_line_separator_inside_a_string_is_not_a_line_break(client: httpx.Client) -> None:
    """A raw U+2028 inside a JSON string is valid JSON: lines are split on "\\n" only, so it is
    one query, not a broken line."""
    row = '{"text": "What is 15% of 200?\u2028And of 300?", "label": "maths"}'
    r = client.post("/v1/evaluate", json={"jsonl": lines(GOOD, row)})
    assert r.status_code == 200, r.text
    assert r.json()["report"]["queries"] == 2


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (NESTED, "line 4: invalid JSON: nested too deeply"),
        (HUGE_NUMBER, "line 4: invalid JSON: a number too long to read"),
        (LONE_SURROGATE, "line 4: 'text' holds a lone surrogate (\\ud800)"),
    ],
    ids=["nested-100000-deep", "5000-digit-number", "lone-surrogate"],
)
def test_indexer_eval_prints_a_clean_error_for_malformed_lines(
    tmp_path: Path, embedder: Embedder, capsys: pytest.CaptureFixture[str], bad: str, needle: str
) -> None:
    """`indexer eval` on such a file (first line or later) exits 2 with one line naming the file
    and line: no traceback, no model loaded for nothing."""
    routes = write_tiny_routes(tmp_path / "routes")
    data = tmp_path / "data"
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    for first in (False, True):
        path = write_jsonl(tmp_path / "val.jsonl", LABELLED[:3])
        text = path.read_text()
        path.write_text(bad + "\n" + text if first else text + bad + "\n")
        args = ["eval", str(path), "--routes", str(routes), "--data-dir", str(data), "--quiet"]
        assert indexer_main(args, out=io.StringIO(), embedder=embedder) == 2
        err = capsys.readouterr().err
        assert ("val.jsonl " + (needle.replace("line 4", "line 1") if first else needle)) in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


# -- item 11: the evals directory follows the rules of routes/ -------------------------------
def test_the_evals_directory_reads_only_regular_files_inside_it_bounded(
    tmp_path: Path, serve_evals: Callable[..., str]
) -> None:
    """A symlink to a file outside the folder and a FIFO named *.jsonl are neither listed nor
    read (404, at once), hidden files are ignored, and a file over ROUTER_LIMITS__MAX_EVAL_FILE_BYTES
    is a 400 naming the limit, unread; the regular files inside are evaluated as before."""
    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "shipped-test.jsonl").write_text((SHIPPED_EVALS / "shipped-test.jsonl").read_text())
    outside = tmp_path / "secret.jsonl"
    outside.write_text(lines(json.dumps({"text": "the secret outside", "label": "oos"})))
    (evals / "leak.jsonl").symlink_to(outside)
    os.mkfifo(evals / "fifo.jsonl")
    (evals / ".hidden.jsonl").write_text(lines(GOOD))
    limit = (evals / "shipped-test.jsonl").stat().st_size + 100
    (evals / "big.jsonl").write_text(lines(*([GOOD] * (2 * limit // len(GOOD)))))
    base = settings_for(Path("unused"), Path("unused"))
    url = serve_evals(evals_dir=evals, limits=base.limits.model_copy(update={"max_eval_file_bytes": limit}))
    with httpx.Client(base_url=url, timeout=60) as c:
        assert c.get("/v1/evals").json()["files"] == ["big.jsonl", "shipped-test.jsonl"]
        for name in ("leak.jsonl", "fifo.jsonl", ".hidden.jsonl"):
            started = time.monotonic()
            r = c.post("/v1/evaluate", json={"file": name})
            assert r.status_code == 404 and time.monotonic() - started < 10, (name, r.text)
            assert "secret outside" not in r.text
        big = c.post("/v1/evaluate", json={"file": "big.jsonl"})
        assert (
            big.status_code == 400
            and f"the limit is {limit} (ROUTER_LIMITS__MAX_EVAL_FILE_BYTES)" in big.json()["detail"]
        )
        ok = c.post("/v1/evaluate", json={"file": "shipped-test.jsonl"})
        assert ok.status_code == 200 and ok.json()["report"]["queries"] == 80
