"""Run the real Litestar app under uvicorn on a loopback port, in a background thread; the
settings the tests serve it with."""

from __future__ import annotations

import asyncio
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


class QuickServer(uvicorn.Server):
    """uvicorn's server without its fixed pauses on the way out, for servers that live for one
    test: it notices `should_exit` within 10 ms (uvicorn ticks every 100 ms) and does not
    sleep 100 ms before waiting for its connections to close. What it waits for is unchanged:
    open connections and tasks (up to the graceful time-out), then the app's lifespan shutdown.
    About 100 tests start a server; uvicorn's pauses cost them 17 s of the fast loop."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.01)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        wait = getattr(self, "_wait_tasks_to_complete", None)
        if wait is None:  # another uvicorn: its own shutdown
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        for _ in range(40):  # up to 200 ms for them to close, looked at every 5 ms
            if not self.server_state.connections:
                break
            await asyncio.sleep(0.005)
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                await wait()
        except TimeoutError:
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()


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
    server = QuickServer(config)
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
