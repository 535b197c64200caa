"""Run the real Litestar app under uvicorn on a loopback port, in a background thread; the
settings the tests serve it with."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from litestar import Litestar

from service.http_server import server_config
from service.settings import HttpSettings, ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_ROUTES = ROOT / "routes"
SHIPPED_EVALS = ROOT / "evals"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(app: Litestar, *, startup_timeout: float = 60.0, http: HttpSettings | None = None) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 until the block ends, as `python -m service` does (the same
    request-head limits, from `http`); yields its base URL."""
    port = free_port()
    config = server_config(app, http or HttpSettings(), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server stopped during start-up")
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not start in time")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def settings_for(routes: Path, data: Path, **overrides: object) -> ServiceSettings:
    """Service settings for an embedded index under `data` (no environment involved)."""
    base = ServiceSettings(_env_file=None)  # type: ignore[call-arg]
    return base.model_copy(
        update={
            "routes_dir": routes,
            "index": base.index.model_copy(update={"data_dir": data}),
            "reload_interval_s": 0.2,
            "evals_dir": SHIPPED_EVALS,
            **overrides,
        }
    )
