"""Request heads and bodies as a hostile client sends them: an oversized head in one write, a
body trickled byte by byte, a client that hangs up mid-body (counted apart, never a 500)."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from devkit.serving import serve, settings_for
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from service.app import create_app
from service.services import Services
from service.settings import HttpSettings
from tests.test_hostile_http import port_of, read_response


@pytest.fixture
def served(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> Iterator[Callable[..., str]]:
    """Serve a fresh index of the shipped routes with the given HTTP settings; returns the URL."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    stack: list[object] = []

    def start(http: HttpSettings) -> str:
        settings = settings_for(routes_dir, data, http=http)
        cm = serve(create_app(services=Services.build(settings, embedder=embedder)), http=settings.http)
        stack.append(cm)
        return cm.__enter__()

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)  # type: ignore[attr-defined]


def requests_counted(url: str, endpoint: str, status: int) -> float:
    """router_http_requests_total for one endpoint, method POST and status."""
    text = httpx.get(f"{url}/metrics").text
    pattern = rf'router_http_requests_total\{{endpoint="{re.escape(endpoint)}",method="POST",route_set="[^"]*",status="{status}"\}} (\S+)'
    return sum(float(value) for value in re.findall(pattern, text))  # whichever route set it was counted under


@pytest.mark.parametrize("size", [40_000, 120_000])
def test_an_oversized_head_in_one_write_is_refused(client: httpx.Client, size: int) -> None:
    """A complete request head of 40 or 120 KB sent in one write (it used to be accepted: the
    32 KiB cap was checked only across reads) is a 431 problem, and the connection closes."""
    head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + b"p" * size + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port_of(str(client.base_url)))) as sock:
        sock.sendall(head)
        reply = read_response(sock)
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:200]
    assert b"application/problem+json" in reply and b"exceeds 32768 bytes" in reply
    many = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + b"".join(
        b"X-H%d: %s\r\n" % (i, b"v" * 90) for i in range(500)
    )
    with socket.create_connection(("127.0.0.1", port_of(str(client.base_url)))) as sock:
        sock.sendall(many + b"\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 431 ")
    assert client.get("/healthz").status_code == 200


@pytest.mark.slow
def test_a_body_trickled_slowly_is_cut_off(served: Callable[..., str]) -> None:
    """A body trickled one byte every 0.2 s is answered 408 and closed once its time is up
    (ROUTER_HTTP__BODY_TIMEOUT_S, here 1 s), counted as a 408; a body sent at once is unaffected."""
    url = served(HttpSettings(body_timeout_s=1.0))
    body = b'{"query": "What is 15% of 200?"}'
    head = (
        b"POST /v1/classify HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % len(body)
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port_of(url))) as sock:
        sock.sendall(head)
        try:
            for byte in body:
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection: what we want
        reply = read_response(sock)
    assert reply.startswith(b"HTTP/1.1 408 ") and b"request body was not complete within 1 s" in reply
    assert time.monotonic() - started < len(body) * 0.2
    deadline = time.monotonic() + 10
    while requests_counted(url, "/v1/classify", 408) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert requests_counted(url, "/v1/classify", 408) == 1
    assert httpx.post(f"{url}/v1/classify", json={"query": "What is 15% of 200?"}).status_code == 200


def test_a_client_closing_mid_body_is_counted_apart(client: httpx.Client) -> None:
    """A client that sends half a body and hangs up is counted as 499 (client closed), never as a
    500: anyone could otherwise inflate the service's error rate."""
    url = str(client.base_url)
    errors_before = requests_counted(url, "/v1/classify", 500)
    closed_before = requests_counted(url, "/v1/classify", 499)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port_of(url))) as sock:
            sock.sendall(
                b"POST /v1/classify HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\n"
                b'content-length: 1000\r\n\r\n{"query": "What is'
            )
            time.sleep(0.2)  # the handler is waiting for the rest of the body
    deadline = time.monotonic() + 10
    while requests_counted(url, "/v1/classify", 499) < closed_before + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert requests_counted(url, "/v1/classify", 499) == closed_before + 3
    assert requests_counted(url, "/v1/classify", 500) == errors_before
