"""Who may use which route set: keys and admin tokens limited to sets, the OpenAI front door
choosing the set by model name, and each set's own rate limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from pydantic import SecretStr

from devkit.fake_llm import FakeLLM
from devkit.routes_dirs import index_route_sets, point_agents_at
from devkit.serving import serve, settings_for
from router_core import Embedder
from service.app import create_app
from service.security import AuthSettings, SetAdminToken, SetKey
from service.services import Services
from tests.llm_fixtures import fast_llm
from tests.test_route_sets import RUST, two_sets

FULL, BETA, ADMIN, BETA_ADMIN = "key-every-set", "key-beta-only", "admin-every-set", "admin-beta-only"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def url(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Embedder,
    fake_llm_server: FakeLLM,
    llm_env: pytest.MonkeyPatch,
) -> Iterator[str]:
    """Two sets (alpha, beta) whose LLM agents answer from the fake LLM; a key and an admin token
    for every set, and a key and an admin token for beta only."""
    tmp = tmp_path_factory.mktemp("set-access")
    root = two_sets(tmp / "routes")
    for name in ("alpha", "beta"):
        point_agents_at(root / name, fake_llm_server.url)
    auth = AuthSettings(
        api_keys=[SecretStr(FULL), SetKey(key=SecretStr(BETA), sets=["beta"])],
        admin_token=SecretStr(ADMIN),
        set_admin_tokens=[SetAdminToken(token=SecretStr(BETA_ADMIN), sets=["beta"])],
    )
    settings = settings_for(root, tmp / "data", auth=auth, llm=fast_llm())
    index_route_sets(settings, embedder)
    with serve(create_app(services=Services.build(settings, embedder=embedder))) as base:
        yield base


def test_a_key_limited_to_a_set_gets_403_everywhere_else(url: str) -> None:
    """The beta key classifies, lists and evaluates beta; every read of alpha (by path, by
    `?set=`, the default paths, the model name) is 403 and says which sets it may use."""
    with httpx.Client(base_url=url, timeout=60, headers=bearer(BETA)) as c:
        assert c.post("/v1/sets/beta/classify", json={"query": RUST}).json()["route"] == "maths"
        assert c.get("/v1/routes", params={"set": "beta"}).status_code == 200
        denied = [
            c.post("/v1/sets/alpha/classify", json={"query": RUST}),
            c.post("/v1/sets/alpha/classify/batch", json={"queries": [RUST]}),
            c.post("/v1/sets/alpha/answer", json={"query": RUST}),
            c.post("/v1/classify", json={"query": RUST}),  # the default set is alpha
            c.get("/v1/routes", params={"set": "alpha"}),
            c.get("/v1/routes/coding/examples", params={"set": "alpha"}),
            c.post("/v1/evaluate", params={"set": "alpha"}, json={"file": "shipped-test.jsonl"}),
            c.post("/v1/sets/nonexistent/classify", json={"query": RUST}),  # no probing of names
        ]
        assert [r.status_code for r in denied] == [403] * len(denied)
        assert "may not use route set 'alpha'; it may use: beta" in denied[0].json()["detail"]
        assert [s["name"] for s in c.get("/v1/sets").json()["sets"]] == ["beta"]
        assert c.get("/v1/caller").json() == {"admin": False, "sets": ["beta"], "admin_sets": []}
        assert c.get("/admin/index", params={"set": "beta"}).status_code == 403  # a key is no admin token
    with httpx.Client(base_url=url, timeout=60, headers=bearer(FULL)) as c:
        assert c.post("/v1/sets/alpha/classify", json={"query": RUST}).json()["route"] == "coding"
        assert c.post("/v1/classify", json={"query": RUST}).json()["route_set"] == "alpha"


def test_an_admin_token_limited_to_a_set_administers_that_set_only(url: str) -> None:
    """The beta admin token reads and re-indexes beta (also without `?set=`: every set it
    administers) and gets 403 for alpha; the admin token of every set reaches both."""
    with httpx.Client(base_url=url, timeout=120, headers=bearer(BETA_ADMIN)) as c:
        assert c.get("/admin/index", params={"set": "beta"}).json()["route_set"] == "beta"
        assert c.get("/admin/index", params={"set": "alpha"}).status_code == 403
        assert c.get("/admin/index").status_code == 403  # the default set is alpha
        assert c.post("/admin/reindex", params={"set": "alpha"}).status_code == 403
        only_beta = c.post("/admin/reindex")
        assert only_beta.status_code == 200 and only_beta.json()["route_set"] == "beta"
        assert c.get("/admin/review", params={"set": "alpha"}).status_code == 403
        assert c.get("/v1/caller").json() == {"admin": True, "sets": ["beta"], "admin_sets": ["beta"]}
    with httpx.Client(base_url=url, timeout=120, headers=bearer(ADMIN)) as c:
        both = c.post("/admin/reindex")
        assert both.status_code == 200 and [s["route_set"] for s in both.json()["sets"]] == ["alpha", "beta"]
        assert c.get("/admin/index", params={"set": "alpha"}).json()["route_set"] == "alpha"


def test_the_openai_client_chooses_the_set_by_model_name(url: str) -> None:
    """With the official client: /v1/models lists `router` and `router/<set>` (only the sets the
    key may use), `model="router/beta"` routes with beta, an unknown model is NotFound and a set
    the key may not use is PermissionDenied."""
    with openai.OpenAI(base_url=f"{url}/v1", api_key=FULL, max_retries=0) as sdk:
        assert [m.id for m in sdk.models.list().data] == ["router", "router/alpha", "router/beta"]
        messages: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": RUST}]
        alpha = sdk.chat.completions.create(model="router/alpha", messages=messages)
        beta = sdk.chat.completions.create(model="router/beta", messages=messages)
        plain = sdk.chat.completions.create(model="router", messages=messages)
        assert (alpha.model, beta.model, plain.model) == (
            "router/coding/gpt-4o-mini",
            "beta-router/maths/gpt-4o-mini",
            "router/coding/gpt-4o-mini",
        )
        assert beta.model_extra is not None and beta.model_extra["router"]["route_set"] == "beta"
        assert beta.choices[0].message.content == f"[gpt-4o-mini] {RUST}"
        stream = sdk.chat.completions.create(model="router/beta", messages=messages, stream=True)
        assert {chunk.model for chunk in stream} == {"beta-router/maths/gpt-4o-mini"}
        with pytest.raises(openai.NotFoundError) as missing:
            sdk.chat.completions.create(model="router/gamma", messages=messages)
        assert "model 'router/gamma' does not exist" in str(missing.value.body)
    with openai.OpenAI(base_url=f"{url}/v1", api_key=BETA, max_retries=0) as limited:
        assert [m.id for m in limited.models.list().data] == ["router/beta"]
        with pytest.raises(openai.PermissionDeniedError):
            limited.chat.completions.create(model="router/alpha", messages=messages)


def test_each_set_has_a_rate_limit_of_its_own(tmp_path: Path, embedder: Embedder) -> None:
    """With 4 queries a minute per set: a batch of 4 uses up alpha (its next request is 429
    naming the set) while beta still answers; one caller's batches are charged to the set too."""
    settings = settings_for(two_sets(tmp_path / "routes"), tmp_path / "data", auth=AuthSettings(set_rate_per_minute=4))
    index_route_sets(settings, embedder)
    with (
        serve(create_app(services=Services.build(settings, embedder=embedder))) as base,
        httpx.Client(base_url=base, timeout=60) as c,
    ):
        assert c.post("/v1/sets/alpha/classify/batch", json={"queries": [RUST] * 4}).status_code == 200
        limited = c.post("/v1/sets/alpha/classify", json={"query": RUST})
        assert limited.status_code == 429 and "route set 'alpha' is over its rate limit" in limited.json()["detail"]
        assert int(limited.headers["retry-after"]) >= 1
        assert c.post("/v1/sets/beta/classify", json={"query": RUST}).status_code == 200
