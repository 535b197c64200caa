"""Serving and offline evaluation route through one pipeline: they agree decision by decision."""

from __future__ import annotations

import io
import itertools
import json
import random
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devkit.fake_llm import Choose, FakeLLM
from devkit.routes_dirs import FAKE_KEY_ENV
from devkit.serving import SHIPPED_ROUTES, settings_for
from indexer.cli import main as indexer_main
from router_core import Embedder, RouteRequest, Turn, load_routes, run_reindex
from router_core.router import Router
from router_core.store import EdgeStore
from router_llm.settings import DeciderSettings
from tests.conftest import ServiceFactory
from tests.test_conversation_costs import conversation

DECIDER = "decision-model"
SHIPPED_TEST = Path(__file__).resolve().parents[1] / "evals" / "shipped-test.jsonl"
CHATS = [
    [
        ("user", "What is 15% of 200?", "maths"),
        ("assistant", "15% of 200 is 30.", None),
        ("user", "and of 350?", "maths"),
        ("assistant", "52.5.", None),
        ("user", "How do I reverse a string in Rust?", "coding"),
        ("assistant", "Use chars().rev().collect().", None),
        ("user", "and in Python?", "coding"),
        ("user", "what's a good recipe for banana bread?", "oos"),
    ],
    [
        ("user", "what discount can I give on a 3 year deal", "pricing_billing"),
        ("assistant", "Up to 15% with approval.", None),
        ("user", "and for 5 years?", "pricing_billing"),
        ("assistant", "Up to 20%.", None),
        ("user", "who closed the most deals this quarter?", "team_performance"),
        ("user", "ok thanks", "team_performance"),
    ],
    [
        ("user", "Does the product support SSO with Okta?", "product_expert"),
        ("assistant", "Yes, via SAML.", None),
        ("user", "can you help me scope a proof of concept for it?", "sales_engineering"),
        ("assistant", "Sure: what systems are involved?", None),
        ("user", "Salesforce and Snowflake", "sales_engineering"),
    ],
]


def mixed_file(path: Path) -> Path:
    """Single queries (one-message conversations from the shipped test file) and multi-turn chats."""
    lines = []
    for i, row in enumerate(json.loads(line) for line in SHIPPED_TEST.read_text(encoding="utf-8").splitlines()[::3]):
        lines.append({"id": f"q{i}", "messages": [{"role": "user", "content": row["text"], "route": row["label"]}]})
    for i, turns in enumerate(CHATS):
        messages = [{"role": r, "content": t, **({"route": g} if g else {})} for r, t, g in turns]
        lines.append({"id": f"c{i}", "messages": messages})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def routes_in_mode(target: Path, mode: str) -> Path:
    """The shipped routes in `mode`; hybrid with a wide band, so that many decisions escalate."""
    shutil.copytree(SHIPPED_ROUTES, target)
    router_file = target / "_router.yaml"
    data = yaml.safe_load(router_file.read_text(encoding="utf-8"))
    data["mode"] = mode
    if mode == "hybrid":
        data["llm"] = {"band_below": 0.1, "band_above": 0.15, "min_lead": 0.5}
    router_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target


def served_decisions(url: str, file: Path) -> list[tuple[str, str, str]]:
    """(route, reason, decided_by) of every labelled turn, each turn sent with the messages before it."""
    out = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for line in file.read_text(encoding="utf-8").splitlines():
            messages = json.loads(line)["messages"]
            for i, message in enumerate(messages):
                if "route" not in message:
                    continue
                sent = [{"role": m["role"], "content": m["content"]} for m in messages[: i + 1]]
                body = client.post("/v1/classify", json={"messages": sent})
                assert body.status_code == 200, body.text
                d = body.json()
                out.append((d["route"], d["reason"], d["decided_by"]))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["embedding", "hybrid", "llm"])
def test_serving_and_offline_evaluation_agree_decision_by_decision(
    mode: str,
    tmp_path: Path,
    embedder: Embedder,
    start_service: ServiceFactory,
    fake_llm: FakeLLM,
    llm_env: pytest.MonkeyPatch,
) -> None:
    """Every labelled turn of a mixed file (single queries, chats) gets the same route, reason and
    decider from POST /v1/classify and from `indexer eval --json`, in every mode (a fake decision model)."""
    fake_llm.always(DECIDER, Choose())
    routes = routes_in_mode(tmp_path / "routes", mode)
    data = tmp_path / "data"
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    decider = DeciderSettings(model=DECIDER, base_url=fake_llm.url, api_key_env=FAKE_KEY_ENV, timeout_s=5.0)
    url = start_service(settings_for(routes, data, decider=decider))
    file = mixed_file(tmp_path / "mixed.jsonl")
    served = served_decisions(url, file)

    for name, value in (("MODEL", DECIDER), ("BASE_URL", fake_llm.url), ("API_KEY_ENV", FAKE_KEY_ENV)):
        llm_env.setenv(f"ROUTER_DECIDER__{name}", value)
    llm_env.setenv("ROUTER_DECIDER__TIMEOUT_S", "5")
    report = tmp_path / "report.json"
    args = ["eval", str(file), "--routes", str(routes), "--data-dir", str(data), "--json", str(report), "--quiet"]
    assert indexer_main([*args, *(["--llm"] if mode != "embedding" else [])], out=io.StringIO(), embedder=embedder) == 0
    offline: list[Any] = json.loads(report.read_text(encoding="utf-8"))["report"]["decisions"]

    assert [(d["route"], d["reason"], d["decided_by"]) for d in offline] == served
    decided_by = {d[2] for d in served}
    assert decided_by == {"embedding": {"vote"}, "hybrid": {"vote", "llm"}, "llm": {"llm"}}[mode]
    if mode != "embedding":  # the model's answers moved some decisions, so the comparison covers them
        assert any(reason in ("llm", "llm_none") for _, reason, _ in served)


def test_a_conversation_is_decided_alike_alone_and_in_any_batch(tmp_path: Path, embedder: Embedder) -> None:
    """The conversation rule spreads its belief over every route of the set, not over the
    routes among one batch's neighbours: six conversations of random words (one of which was
    routed to pricing_billing alone and to team_performance beside the others, when the routes
    came from the batch) get the same decisions together, alone and in pairs."""
    store = EdgeStore(tmp_path / "data")
    run_reindex(load_routes(SHIPPED_ROUTES), store, embedder)
    router = Router(store.open_version(store.live_version() or ""), embedder)
    rng = random.Random(2)
    tag = f"pass-{random.Random(1012).randrange(10**9)}"
    requests = [
        RouteRequest(tuple(Turn(j, m["role"], m["content"]) for j, m in enumerate(conversation(f"{tag}-{i}", rng))))
        for i in range(6)
    ]
    alone = [(d.route, d.reason) for r in requests for d in router.route([r])]
    assert [(d.route, d.reason) for d in router.route(requests)] == alone
    for i, j in itertools.combinations(range(len(requests)), 2):
        pair = router.route([requests[i], requests[j]])
        assert [(d.route, d.reason) for d in pair] == [alone[i], alone[j]], (i, j)
