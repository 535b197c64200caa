"""API keys, the admin token, the bind rule, rate limits and CORS."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from devkit.serving import ROOT, settings_for
from devkit.waiting import wait_for
from router_core import Embedder, load_routes, run_reindex
from router_core.settings import settings_problems
from router_core.store import EdgeStore
from service.rate_limits import RateLimiter
from service.security import AuthSettings, InsecureBind, check_bind, is_loopback
from service.settings import ServiceSettings
from tests.conftest import ServiceFactory

KEY1, KEY2, ADMIN = "public-key-one", "public-key-two", "admin-token-xyz"
QUERY = {"query": "How do I use async with Rust?"}


@pytest.fixture
def keyed(tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory):
    """Start a service with the given auth settings on a fresh index; returns its URL."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)

    def start(**auth: object) -> str:
        return start_service(settings_for(routes_dir, data, auth=AuthSettings(**auth)))

    return start


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_public_endpoints_need_a_valid_key(keyed) -> None:
    """No key or a wrong key is 401 with a Bearer challenge; each configured key works."""
    url = keyed(api_keys=[SecretStr(KEY1), SecretStr(KEY2)], admin_token=SecretStr(ADMIN))
    with httpx.Client(base_url=url) as c:
        missing = c.post("/v1/classify", json=QUERY)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert "API key is required" in missing.json()["detail"]
        wrong = c.post("/v1/classify", json=QUERY, headers=bearer("nope"))
        assert wrong.status_code == 401 and "not valid" in wrong.json()["detail"]
        assert c.post("/v1/classify", json=QUERY, headers={"Authorization": "Basic abc"}).status_code == 401
        for key in (KEY1, KEY2):
            assert c.post("/v1/classify", json=QUERY, headers=bearer(key)).json()["route"] == "coding"
        assert c.get("/v1/routes", headers=bearer(KEY1)).status_code == 200
        assert c.get("/v1/models").status_code == 401
        # Liveness and readiness stay open for orchestrators.
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200


def test_admin_endpoints_need_the_admin_token(keyed) -> None:
    """Admin: no token 401, a public key 403, the admin token 200."""
    url = keyed(api_keys=[SecretStr(KEY1)], admin_token=SecretStr(ADMIN))
    with httpx.Client(base_url=url) as c:
        assert c.get("/admin/index").status_code == 401
        forbidden = c.get("/admin/index", headers=bearer(KEY1))
        assert forbidden.status_code == 403 and "may not use admin" in forbidden.json()["detail"]
        assert c.get("/admin/index", headers=bearer("wrong")).status_code == 401
        assert c.get("/admin/index", headers=bearer(ADMIN)).status_code == 200


def test_admin_disabled_without_admin_token_when_keys_exist(keyed) -> None:
    """With API keys but no admin token, admin endpoints are refused (403), never open."""
    url = keyed(api_keys=[SecretStr(KEY1)])
    r = httpx.get(f"{url}/admin/index", headers=bearer(KEY1))
    assert r.status_code == 403 and "ROUTER_AUTH__ADMIN_TOKEN" in r.json()["detail"]


def test_rate_limit_returns_429_with_retry_after(keyed) -> None:
    """Past its per-minute budget a key gets 429 with Retry-After; other keys are unaffected."""
    url = keyed(api_keys=[SecretStr(KEY1), SecretStr(KEY2)], rate_per_minute=3)
    with httpx.Client(base_url=url) as c:
        codes = [c.post("/v1/classify", json=QUERY, headers=bearer(KEY1)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = c.post("/v1/classify", json=QUERY, headers=bearer(KEY1))
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "rate limit" in limited.json()["detail"]
        assert c.post("/v1/classify", json=QUERY, headers=bearer(KEY2)).status_code == 200


def test_open_service_limits_by_address_whatever_the_authorization_header(keyed) -> None:
    """With no keys configured, a made-up bearer token does not buy a fresh bucket, and a
    header from an authenticating proxy (Basic) is not refused."""
    url = keyed(rate_per_minute=3)
    with httpx.Client(base_url=url) as c:
        codes = [c.post("/v1/classify", json=QUERY, headers=bearer(f"made-up-{i}")).status_code for i in range(3)]
        assert codes == [200, 200, 200]
        assert c.post("/v1/classify", json=QUERY, headers=bearer("yet-another")).status_code == 429
        assert c.post("/v1/classify", json=QUERY, headers={"Authorization": "Basic dXNlcjpwdw=="}).status_code == 429
    fresh = keyed(rate_per_minute=60)
    with httpx.Client(base_url=fresh) as c:
        proxied = c.post("/v1/classify", json=QUERY, headers={"Authorization": "Basic dXNlcjpwdw=="})
        assert proxied.status_code == 200, proxied.text


def test_rate_limiter_forgets_refilled_callers() -> None:
    """Buckets of callers gone quiet for a refill period are dropped: memory does not grow
    with every identity ever seen."""
    limiter = RateLimiter(per_minute=60, burst=2)
    for i in range(1000):
        limiter.acquire(f"caller-{i}", now=0.0)
    assert len(limiter) == 1000
    limiter.acquire("late", now=1.0)  # one second: no bucket has refilled yet (two needed)
    assert len(limiter) == 1001
    limiter.acquire("later", now=2.5)
    assert len(limiter) == 1  # only "later", just charged
    assert limiter.acquire("later", now=2.5) == 0  # its second token


def test_rate_limiter_refills() -> None:
    """A bucket refills at the configured rate."""
    limiter = RateLimiter(per_minute=60, burst=1)
    assert limiter.acquire("k", now=0.0) == 0
    assert limiter.acquire("k", now=0.1) == pytest.approx(0.9)
    assert limiter.acquire("k", now=1.0) == 0


def test_keys_never_reach_logs(keyed, caplog: pytest.LogCaptureFixture) -> None:
    """Neither a valid nor an invalid key appears in any log record."""
    url = keyed(api_keys=[SecretStr(KEY1)], admin_token=SecretStr(ADMIN))
    with caplog.at_level(logging.DEBUG):
        httpx.post(f"{url}/v1/classify", json=QUERY, headers=bearer(KEY1))
        httpx.post(f"{url}/v1/classify", json=QUERY, headers=bearer("leaky-wrong-key"))
        httpx.get(f"{url}/admin/index", headers=bearer(ADMIN))
        # An access line is written once its response has gone out, just after the client has it.
        wait_for(lambda: sum(r.name == "router.access" for r in caplog.records) >= 3, 10, "the access lines")
    text = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "router.access" in {r.name for r in caplog.records}
    for secret in (KEY1, ADMIN, "leaky-wrong-key"):
        assert secret not in text


def test_bind_rule() -> None:
    """Without keys only loopback binds are allowed, unless explicitly permitted."""
    open_auth = AuthSettings()
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert is_loopback(host)
        check_bind(host, open_auth, allow_insecure=False)
    with pytest.raises(InsecureBind, match="ROUTER_AUTH__API_KEYS"):
        check_bind("0.0.0.0", open_auth, allow_insecure=False)
    check_bind("0.0.0.0", open_auth, allow_insecure=True)
    check_bind("0.0.0.0", AuthSettings(api_keys=[SecretStr("k")]), allow_insecure=False)


def test_cors_off_unless_configured(keyed, client: httpx.Client) -> None:
    """No CORS headers by default; configured origins get them."""
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/classify", headers=pre).headers
    url = keyed(cors_origins=["https://app.example"])
    allowed = httpx.options(f"{url}/v1/classify", headers=pre)
    assert allowed.headers.get("access-control-allow-origin") == "https://app.example"


@pytest.mark.parametrize(
    ("auth", "problem"),
    [
        ({"api_keys": [SecretStr("")]}, "ROUTER_AUTH__API_KEYS: key 1 of 1 is empty"),
        ({"api_keys": [SecretStr(KEY1), SecretStr("")]}, "ROUTER_AUTH__API_KEYS: key 2 of 2 is empty"),
        ({"api_keys": [SecretStr(" padded-key ")]}, "ROUTER_AUTH__API_KEYS: key 1 of 1 starts or ends with whitespace"),
        ({"api_keys": [SecretStr("tab\tinside")]}, "ROUTER_AUTH__API_KEYS: key 1 of 1 holds a character"),
        ({"admin_token": SecretStr("")}, "ROUTER_AUTH__ADMIN_TOKEN: the token is empty"),
    ],
    ids=["empty", "one-of-two-empty", "padded", "control-character", "empty-admin-token"],
)
def test_keys_that_could_never_be_presented_are_refused(auth: dict[str, object], problem: str) -> None:
    """An empty key (which refused everyone, and as a non-empty key list let the service bind
    any address), a padded one or one with a control character is refused at start-up, naming
    the variable, never the value."""
    with pytest.raises(ValidationError) as caught:
        ServiceSettings(_env_file=None, auth=auth)  # type: ignore[call-arg]
    [line] = settings_problems(caught.value, ServiceSettings)
    assert line.startswith(problem)
    assert "padded-key" not in line and "inside" not in line


@pytest.mark.slow
def test_an_empty_key_stops_the_service_before_it_binds(tmp_path: Path) -> None:
    """`ROUTER_AUTH__API_KEYS='[""]'` with a non-loopback host: `python -m service` exits 2 naming
    the variable, before it loads anything or listens anywhere."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env = {**clean, "ROUTER_AUTH__API_KEYS": '[""]', "ROUTER_HTTP__HOST": "0.0.0.0"}
    proc = subprocess.run(
        [sys.executable, "-m", "service"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "ROUTER_AUTH__API_KEYS: key 1 of 1 is empty" in proc.stderr and "Traceback" not in proc.stderr
