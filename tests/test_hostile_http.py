"""Hostile HTTP: oversized and slow request heads, JSON nested too deep, cross-site requests
to the open service, failed authentication, duplicate credentials, HEAD probes, and messages
padded with blanks."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from devkit.serving import serve, settings_for
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from service.app import create_app
from service.security import AuthSettings
from service.services import Services
from service.settings import HttpSettings
from tests.conftest import ServiceFactory

JSON_ENDPOINTS = {
    "/v1/classify": {"query": "What is 15% of 200?"},
    "/v1/classify/batch": {"queries": ["What is 15% of 200?"]},
    "/v1/answer": {"query": "What is 15% of 200?"},
    "/v1/chat/completions": {"model": "router", "messages": [{"role": "user", "content": "What is 15% of 200?"}]},
}
KEY, ADMIN = "public-key-hostile", "admin-token-hostile"


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(60)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def indexed(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> Iterator[Callable[..., str]]:
    """Serve a fresh index of the shipped routes with the given settings; returns the URL."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    stack: list[object] = []

    def start(*, http: HttpSettings | None = None, **overrides: object) -> str:
        settings = settings_for(routes_dir, data, **({"http": http} if http else {}), **overrides)
        cm = serve(create_app(services=Services.build(settings, embedder=embedder)), http=settings.http)
        stack.append(cm)
        return cm.__enter__()

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)  # type: ignore[attr-defined]


# -- item 7: request heads ------------------------------------------------------------------------
def test_an_oversized_request_head_is_refused_with_431(client: httpx.Client) -> None:
    """A request head over the limit (32 KiB by default) is answered 431, a problem, and closed."""
    with socket.create_connection(("127.0.0.1", port_of(str(client.base_url)))) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + b"A" * 100_000)
        reply = read_response(sock)
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert b"application/problem+json" in reply and b"exceeds 32768 bytes" in reply
    assert client.get("/healthz").status_code == 200


def test_a_huge_header_is_never_read_in_full(client: httpx.Client) -> None:
    """A client streaming a 20 MB Authorization header is cut off once the limit is passed: the
    server stops reading (the connection closes long before 20 MB could be sent) and keeps
    answering everyone else."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port_of(str(client.base_url)))) as sock:
        sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ")
        try:
            while sent < 20_000_000:
                sock.sendall(b"A" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection: what we want
    assert sent < 20_000_000
    assert client.get("/healthz").status_code == 200


@pytest.mark.slow
def test_a_head_sent_too_slowly_is_cut_off(indexed: Callable[..., str]) -> None:
    """A client that starts a request head and never finishes it gets 408 and a closed
    connection after the header timeout, on a fresh and on a kept-alive connection; one that
    connects and sends nothing is closed."""
    url = indexed(http=HttpSettings(header_timeout_s=0.5))
    with socket.create_connection(("127.0.0.1", port_of(url))) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        assert read_response(sock).startswith(b"HTTP/1.1 408 ")
    with socket.create_connection(("127.0.0.1", port_of(url))) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        sock.settimeout(30)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: loc")
        assert b"HTTP/1.1 408 " in read_response(sock)
    with socket.create_connection(("127.0.0.1", port_of(url))) as sock:
        assert read_response(sock) == b""
    assert httpx.get(f"{url}/healthz").status_code == 200


# -- item 8: JSON nested too deep -------------------------------------------------------------------
@pytest.mark.parametrize("path", list(JSON_ENDPOINTS))
@pytest.mark.parametrize("depth", [1000, 100_000])
def test_json_nested_too_deep_is_a_400_problem(client: httpx.Client, path: str, depth: int) -> None:
    """A body nested 1,000 (or 100,000) levels deep is a 400 problem naming the nesting, not a 500."""
    body = '{"query": "hi", "x": ' + "[" * depth + "]" * depth + "}"
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "Traceback" not in r.text and ("nested too deeply" in r.json()["detail"] or depth == 1000)


# -- item 9: cross-site requests -----------------------------------------------------------------
@pytest.mark.parametrize("path", list(JSON_ENDPOINTS))
def test_json_endpoints_take_only_json(client: httpx.Client, path: str) -> None:
    """The same JSON sent as text/plain, as a form or without a type is a 415 (what a cross-site
    form can send without a preflight never runs)."""
    body = json.dumps(JSON_ENDPOINTS[path])
    for headers in ({"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"}, {}):
        r = client.post(path, content=body, headers=headers)
        assert r.status_code == 415, (headers, r.text)
        assert r.json()["title"] == "Unsupported media type"
    assert (
        client.post(path, content=body, headers={"content-type": "application/json; charset=utf-8"}).status_code == 200
    )


def test_browser_cross_origin_writes_are_refused(client: httpx.Client) -> None:
    """A POST with a foreign Origin is a 403 on /v1 and /admin; same-origin and Origin-less
    requests (curl, SDKs) go through."""
    foreign = {"origin": "https://evil.example"}
    assert client.post("/v1/answer", json={"query": "What is 15% of 200?"}, headers=foreign).status_code == 403
    assert client.post("/admin/reindex", headers=foreign).status_code == 403
    assert client.post("/admin/reindex", headers={"origin": "null"}).status_code == 403
    same = {"origin": str(client.base_url)}
    assert client.post("/v1/classify", json={"query": "What is 15% of 200?"}, headers=same).status_code == 200
    assert client.post("/v1/classify", json={"query": "What is 15% of 200?"}).status_code == 200


def test_configured_cors_origins_may_write(indexed: Callable[..., str]) -> None:
    """An origin listed in ROUTER_AUTH__CORS_ORIGINS is allowed to POST."""
    url = indexed(auth=AuthSettings(cors_origins=["https://app.example"]))
    r = httpx.post(f"{url}/v1/classify", json={"query": "hi"}, headers={"origin": "https://app.example"})
    assert r.status_code == 200


def test_open_mode_accepts_only_loopback_host_names(indexed: Callable[..., str]) -> None:
    """Without keys, a foreign Host (DNS rebinding) is refused on /v1 and /admin; probes and
    metrics stay open; allowed names and keyed services accept any Host."""
    url = indexed()
    rebinding = {"host": "attacker.example:8000"}
    assert httpx.post(f"{url}/v1/classify", json={"query": "hi"}, headers=rebinding).status_code == 403
    assert httpx.get(f"{url}/admin/index", headers=rebinding).status_code == 403
    assert httpx.get(f"{url}/healthz", headers=rebinding).status_code == 200
    for host in ("localhost:1234", "127.0.0.1", "[::1]:8000", "LOCALHOST"):
        assert httpx.post(f"{url}/v1/classify", json={"query": "hi"}, headers={"host": host}).status_code == 200
    named = indexed(http=HttpSettings(allowed_hosts=["router.internal"]))
    assert (
        httpx.post(f"{named}/v1/classify", json={"query": "hi"}, headers={"host": "router.internal:8000"}).status_code
        == 200
    )
    keyed = indexed(auth=AuthSettings(api_keys=[SecretStr(KEY)]))
    headers = {"host": "router.example.com", "authorization": f"Bearer {KEY}"}
    assert httpx.post(f"{keyed}/v1/classify", json={"query": "hi"}, headers=headers).status_code == 200


# -- item 11: authentication, deliberately ----------------------------------------------------------
def test_failed_authentication_is_rate_limited_per_address(indexed: Callable[..., str]) -> None:
    """30 wrong keys: 429 with Retry-After after the tenth failure; the right key and the admin
    token from that address still go through (checked, not refused); a missing key stays 401."""
    url = indexed(auth=AuthSettings(api_keys=[SecretStr(KEY)], admin_token=SecretStr(ADMIN)))
    with httpx.Client(base_url=url) as c:
        codes = [
            c.post("/v1/classify", json={"query": "hi"}, headers={"authorization": f"Bearer wrong-{i}"}).status_code
            for i in range(30)
        ]
        assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}
        blocked = c.post("/v1/classify", json={"query": "hi"}, headers={"authorization": "Bearer wrong-again"})
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        assert "failed authentication" in blocked.json()["detail"]
        assert (
            c.post("/v1/classify", json={"query": "hi"}, headers={"authorization": f"Bearer {KEY}"}).status_code == 200
        )
        assert c.get("/admin/index", headers={"authorization": f"Bearer {ADMIN}"}).status_code == 200
        assert c.post("/v1/classify", json={"query": "hi"}).status_code == 401


def test_a_guesser_on_a_shared_address_never_locks_out_valid_callers(indexed: Callable[..., str]) -> None:
    """The issue's probe, with the waits taken out: from one address, 10 bad keys, then a bad key
    before each of 30 calls with the valid key and 30 with the admin token: every valid call is
    answered (it was 429 on 17 of 30), every bad key after the tenth is 429."""
    url = indexed(auth=AuthSettings(api_keys=[SecretStr(KEY)], admin_token=SecretStr(ADMIN)))
    with httpx.Client(base_url=url) as c:

        def bad(i: int) -> int:
            return c.post(
                "/v1/classify", json={"query": "hi"}, headers={"authorization": f"Bearer bad-{i}"}
            ).status_code

        assert [bad(i) for i in range(10)] == [401] * 10
        valid, admin, guesses = [], [], []
        for i in range(30):
            guesses.append(bad(100 + i))
            valid.append(c.post("/v1/classify", json={"query": "hi"}, headers={"authorization": f"Bearer {KEY}"}))
            guesses.append(bad(200 + i))
            admin.append(c.get("/admin/index", headers={"authorization": f"Bearer {ADMIN}"}))
    assert [r.status_code for r in valid] == [200] * 30
    assert [r.status_code for r in admin] == [200] * 30
    assert set(guesses) == {429}


def test_guessing_from_a_blocked_address_is_bounded(indexed: Callable[..., str]) -> None:
    """Past the failed limit, an address gets ROUTER_AUTH__BLOCKED_CHECKS_PER_MINUTE credential
    checks; then credentials are refused unchecked, a valid key new to this address included,
    while a key that authenticated before is still checked and answered."""
    other = "public-key-hostile-2"
    auth = AuthSettings(api_keys=[SecretStr(KEY), SecretStr(other)], failed_per_minute=3, blocked_checks_per_minute=5)
    url = indexed(auth=auth)
    with httpx.Client(base_url=url) as c:

        def post(token: str) -> int:
            return c.post(
                "/v1/classify", json={"query": "hi"}, headers={"authorization": f"Bearer {token}"}
            ).status_code

        assert post(KEY) == 200  # known from now on
        assert [post(f"guess-{i}") for i in range(3)] == [401] * 3
        assert [post(f"guess-{i}") for i in range(3, 8)] == [429] * 5  # checked: the budget of 5
        assert post(other) == 429  # beyond the budget: refused unchecked, even a valid key
        assert post(KEY) == 200


def test_a_wrong_key_retried_is_limited_per_credential(indexed: Callable[..., str]) -> None:
    """A client retrying one wrong key: past the limit that key is 429 from any address, without
    charging the other address, whose own wrong keys are still plain 401s."""
    url = indexed(auth=AuthSettings(api_keys=[SecretStr(KEY)], failed_per_minute=5))

    def client_from(address: str) -> httpx.Client:
        return httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address=address))

    with client_from("127.0.0.2") as first, client_from("127.0.0.3") as second:

        def post(c: httpx.Client, token: str) -> int:
            return c.post(
                "/v1/classify", json={"query": "hi"}, headers={"authorization": f"Bearer {token}"}
            ).status_code

        assert [post(first, "stale-key") for _ in range(5)] == [401] * 5
        assert post(first, "stale-key") == 429
        assert [post(second, "stale-key") for _ in range(10)] == [429] * 10  # refused unchecked
        assert [post(second, f"typo-{i}") for i in range(5)] == [401] * 5  # .3's own budget is whole
        assert post(second, KEY) == 200


def test_two_authorization_headers_are_refused(indexed: Callable[..., str]) -> None:
    """With keys, two Authorization headers (whichever comes first) are a 400, never a pick."""
    url = indexed(auth=AuthSettings(api_keys=[SecretStr(KEY)], admin_token=SecretStr(ADMIN)))
    for pair in ([KEY, "other"], ["other", KEY], [ADMIN, ADMIN]):
        headers = [("authorization", f"Bearer {pair[0]}"), ("authorization", f"Bearer {pair[1]}")]
        for method, path in (("POST", "/v1/classify"), ("GET", "/admin/index")):
            r = httpx.request(method, f"{url}{path}", json={"query": "hi"}, headers=headers)
            assert r.status_code == 400 and r.json()["title"] == "Ambiguous credentials"


def test_open_mode_ignores_the_authorization_header_everywhere(client: httpx.Client) -> None:
    """Without keys the Authorization header belongs to whatever proxy sent it: Basic (or a
    made-up bearer) is ignored on public and admin endpoints alike."""
    for auth in ("Basic dXNlcjpwdw==", "Bearer made-up", "Negotiate abc"):
        headers = {"authorization": auth}
        assert client.post("/v1/classify", json={"query": "hi"}, headers=headers).status_code == 200
        assert client.get("/admin/index", headers=headers).status_code == 200


# -- item 12: HEAD probes -----------------------------------------------------------------------------
def test_head_probes_answer_like_get(client: httpx.Client) -> None:
    """HEAD /healthz and /readyz answer 200 without a body, as load balancers ask."""
    for path in ("/healthz", "/readyz"):
        r = client.head(path)
        assert r.status_code == 200 and r.content == b""


def test_head_readyz_is_503_when_not_ready(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """HEAD /readyz says 503 when GET does (the index directory is no longer a directory)."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    url = start_service(settings_for(routes_dir, data))
    (data / "router").rename(tmp_path / "moved")
    (data / "router").write_text("not a directory")
    assert httpx.get(f"{url}/readyz").status_code == 503
    r = httpx.head(f"{url}/readyz")
    assert r.status_code == 503 and r.content == b""


# -- item 13: blanks before the words -------------------------------------------------------------
@pytest.mark.parametrize("padding", [" " * 2000, "\n" * 1990], ids=["2000-blanks", "1990-newlines"])
def test_chat_messages_are_stripped_before_the_query_limit(client: httpx.Client, padding: str) -> None:
    """A message padded with blanks is routed on its words: not a 400 for 2,000 leading blanks,
    and not on its first 10 characters after 1,990 newlines."""
    words = "What is 15% of 200? Show the percentage arithmetic step by step."
    messages = [{"role": "user", "content": padding + words}]
    r = client.post("/v1/classify", json={"messages": messages})
    assert r.status_code == 200, r.text
    plain = client.post("/v1/classify", json={"query": words}).json()
    assert (r.json()["route"], r.json()["score"]) == (plain["route"], plain["score"]) == ("maths", plain["score"])
    answered = client.post("/v1/chat/completions", json={"model": "router", "messages": messages})
    assert answered.status_code == 200 and answered.headers["x-router-route"] == "maths"
