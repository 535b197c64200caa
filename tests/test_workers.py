"""Several worker processes behind one port (`ROUTER_HTTP__WORKERS`): every worker serves and
follows a re-index, bad settings are refused, and stopping the service stops every worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from devkit.processes import stop_process
from devkit.routes_dirs import add_route
from devkit.service_process import service_process
from devkit.serving import ROOT, serve
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from service.app import create_app
from service.security import AuthSettings
from service.services import Services
from service.settings import ServiceSettings
from service.worker import pass_share
from service.workers import cpu_share

WORKERS = 2
PAY_SLIP = ["where is my pay slip for march", "download my payslip", "I cannot find last month's payslip"]


def _children(pid: int) -> set[int]:
    """The processes `pid` started (Linux /proc)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    """The pids still alive after waiting up to `timeout` seconds for all of them to exit."""
    deadline = time.monotonic() + timeout
    while (left := {p for p in pids if _alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _per_connection(url: str, count: int, path: str, body: dict[str, str] | None = None) -> list[httpx.Response]:
    """`count` requests, each on a new connection (the supervisor hands connections out in turn)."""
    out = []
    for _ in range(count):
        with httpx.Client(base_url=url, timeout=60) as c:
            out.append(c.post(path, json=body) if body is not None else c.get(path))
    return out


def _run_service(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m service` with the environment plus `env`, to its end."""
    return subprocess.run(
        [sys.executable, "-m", "service"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _env(routes: Path, data: Path) -> dict[str, str]:
    # TMPDIR: where the supervisor makes the workers' metrics directory (left behind by a SIGKILL)
    return {
        "ROUTER_ROUTES_DIR": str(routes),
        "ROUTER_INDEX__DATA_DIR": str(data),
        "ROUTER_RELOAD_INTERVAL_S": "0.2",
        "TMPDIR": str(data.parent),
    }


@pytest.mark.slow
def test_every_worker_serves_and_follows_an_admin_reindex(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> None:
    """With 2 workers, fresh connections reach both (two pids in /readyz) and both route; an
    admin re-index lands on one worker, runs once (one new version), and both then serve it."""
    data = tmp_path / "data"
    first = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
    with service_process(_env(routes_dir, data), workers=WORKERS) as service:
        pids = {r.json()["checks"]["pid"] for r in _per_connection(service.url, 2 * WORKERS, "/readyz")}
        assert pids == _children(service.proc.pid) and len(pids) == WORKERS
        for r in _per_connection(service.url, 2 * WORKERS, "/v1/classify", {"query": "solve 2x+3=7"}):
            assert r.status_code == 200 and r.json()["route"] == "maths" and r.json()["index_version"] == first
        add_route(routes_dir, "payroll", PAY_SLIP)
        with httpx.Client(base_url=service.url, timeout=120) as c:
            done = c.post("/admin/reindex").json()
        assert done["changed"] is True and done["version"] != first
        assert set(EdgeStore(data).versions()) == {first, done["version"]}  # ran once, not once per worker
        deadline = time.monotonic() + 30
        while True:
            answers = [
                r.json() for r in _per_connection(service.url, 2 * WORKERS, "/v1/classify", {"query": PAY_SLIP[0]})
            ]
            if all(a["index_version"] == done["version"] for a in answers) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [a["index_version"] for a in answers] == [done["version"]] * 2 * WORKERS
        assert {a["route"] for a in answers} == {"payroll"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("0", "ROUTER_HTTP__WORKERS: Input should be greater than or equal to 1"),
        ("65", "ROUTER_HTTP__WORKERS: Input should be less than or equal to 64"),
        ("two", "ROUTER_HTTP__WORKERS: Input should be a valid integer"),
    ],
)
def test_bad_worker_settings_are_refused(value: str, says: str) -> None:
    """`python -m service` with an invalid worker count exits 2 naming the setting and the problem."""
    done = _run_service({"ROUTER_HTTP__WORKERS": value})
    assert done.returncode == 2
    assert "the service cannot start: invalid settings" in done.stderr and says in done.stderr


@pytest.mark.slow
def test_workers_refuse_a_taken_port(tmp_path: Path) -> None:
    """With several workers, a port another process listens on is refused at once, naming it."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {"ROUTER_HTTP__WORKERS": "2", "ROUTER_HTTP__PORT": str(port), "ROUTER_INDEX__DATA_DIR": str(tmp_path)}
        done = _run_service(env)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


@pytest.mark.slow
def test_a_worker_that_cannot_start_stops_the_service(tmp_path: Path) -> None:
    """No index: the first worker says what to run and the service exits 2, leaving no worker behind."""
    env = {"ROUTER_HTTP__WORKERS": "2", "ROUTER_INDEX__DATA_DIR": str(tmp_path / "empty")}
    done = _run_service({**env, "ROUTER_DECISION_LOG__RECORD": "none"})
    assert done.returncode == 2
    assert "no index found" in done.stderr and "python -m indexer" in done.stderr
    assert "worker 0 exited with status 2 while starting" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_the_service_stops_every_worker(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, how: signal.Signals
) -> None:
    """SIGTERM to the supervisor: it exits 0 and every worker has exited; SIGKILL to the
    supervisor: the workers exit on their own (the kernel's parent-death signal), no orphan left."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    with service_process(_env(routes_dir, data), workers=WORKERS) as service:
        workers = _children(service.proc.pid)
        assert len(workers) == WORKERS
        with httpx.Client(base_url=service.url, timeout=60) as c:
            assert c.post("/v1/classify", json={"query": "solve 2x+3=7"}).status_code == 200
        service.proc.send_signal(how)
        code = service.proc.wait(timeout=60)
        assert code == (0 if how == signal.SIGTERM else -signal.SIGKILL)
        assert _wait_gone(workers, timeout=30) == set()
        stop_process(service.proc)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, WORKERS])
def test_every_serving_process_freezes_its_start_up_heap(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, workers: int
) -> None:
    """One process or each worker leaves what it built at start-up out of the garbage
    collector's passes before it serves (a full pass over it stops the service ~110 ms), and
    says so once; the service then serves."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    with service_process(_env(routes_dir, data), workers=workers) as service:
        with httpx.Client(base_url=service.url, timeout=60) as c:
            assert c.post("/v1/classify", json={"query": "solve 2x+3=7"}).status_code == 200
        lines = [line for line in service.stderr().splitlines() if "start-up heap frozen" in line]
    assert len(lines) == workers, lines
    counts = [int(line.split("start-up heap frozen: ", 1)[1].split()[0]) for line in lines]
    assert all(n > 10_000 for n in counts), counts  # the modules, app, model and index: ~190,000


@pytest.mark.parametrize(
    ("workers", "cores", "shares"),
    [
        (2, [0, 1], [[0], [1]]),
        (2, [0, 1, 2, 3, 4], [[0, 1], [2, 3, 4]]),
        (4, [2, 3, 5, 7], [[2], [3], [5], [7]]),
        (3, [0, 1], [[0, 1], [0, 1], [0, 1]]),
    ],
)
def test_each_worker_gets_its_share_of_the_cores(workers: int, cores: list[int], shares: list[list[int]]) -> None:
    """Workers split the usable cores evenly (the last takes the remainder); more workers than
    cores all share every core."""
    assert [cpu_share(i, workers, cores) for i in range(workers)] == shares


def test_each_worker_takes_its_share_of_the_failed_authentication_budget(
    shipped_settings: ServiceSettings, embedder: Embedder
) -> None:
    """One of 2 worker processes with ROUTER_AUTH__FAILED_PER_MINUTE=4 refuses a wrong key (429)
    after 2 failures: the workers together allow the configured 4, not 4 each."""
    auth = AuthSettings(api_keys=[SecretStr("right-key")], failed_per_minute=4)
    settings = shipped_settings.model_copy(update={"auth": auth})
    services = Services.build(settings, embedder=embedder, processes=2)
    wrong = {"authorization": "Bearer wrong-key"}
    with serve(create_app(services=services)) as url, httpx.Client(base_url=url, timeout=60, headers=wrong) as c:
        statuses = [c.post("/v1/classify", json={"query": "hi"}).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


@pytest.mark.parametrize(
    ("chars", "share", "pass_chars"),
    [(16_000, 1 / 2, 8_000), (16_000, 2 / 2, 16_000), (16_000, 1 / 3, 5_333), (16_000, 4 / 3, 16_000), (1, 1 / 2, 1)],
)
def test_a_worker_passes_hold_its_share_of_the_characters(chars: int, share: float, pass_chars: int) -> None:
    """A worker with `share` of the machine's cores (pinned, or one of several the system
    schedules) fills its passes with that share of ROUTER_LIMITS__MAX_MICRO_BATCH_CHARS (at least
    1), so with every worker busy a pass takes as long as in one process."""
    settings = ServiceSettings(_env_file=None)  # type: ignore[call-arg]
    settings = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_micro_batch_chars": chars})}
    )
    assert pass_share(settings, share).limits.max_micro_batch_chars == pass_chars


@pytest.mark.slow
def test_metrics_count_every_worker(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> None:
    """With 2 workers, /metrics counts the requests of both, whichever worker answers the scrape."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    with service_process(_env(routes_dir, data), workers=WORKERS) as service:
        answers = _per_connection(service.url, 3 * WORKERS, "/v1/classify", {"query": "solve 2x+3=7"})
        assert [r.status_code for r in answers] == [200] * 3 * WORKERS
        line = f'router_http_requests_total{{endpoint="/v1/classify",method="POST",route_set="default",status="200"}} {3 * WORKERS}.0'
        scrapes = [r.text for r in _per_connection(service.url, WORKERS, "/metrics")]
        assert all(line in text for text in scrapes)


def _embedded(url: str) -> float:
    """Texts the workers embedded so far (their shared counters)."""
    with httpx.Client(base_url=url, timeout=60) as c:
        text = c.get("/metrics").text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("router_routed_texts_total") and 'source="embedded"' in line
    )


@pytest.mark.slow
def test_the_next_turn_on_another_worker_embeds_only_what_it_adds(
    tmp_path: Path, routes_dir: Path, embedder: Embedder
) -> None:
    """A live chat whose client opens a connection per request lands on the other worker at its
    next turn (connections go to the workers in turn): that worker reads the history's vectors
    from the table the workers share and embeds only the agent's reply and the new message,
    as the worker that saw the chat would (before: the whole window again, 11 texts)."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    tag = f"shared-{os.getpid()}-{time.monotonic_ns()}"
    chat = []
    for i in range(10):
        chat.append(
            {"role": "user", "content": f"how do I fix borrow checker error number {i} in my rust code ({tag})"}
        )
        chat.append({"role": "assistant", "content": f"Move the value or borrow it immutably, step {i} ({tag})."})
    chat.append({"role": "user", "content": f"and what about lifetimes in that struct? ({tag})"})
    with service_process(_env(routes_dir, data), workers=WORKERS) as service:
        turns = []
        for messages in (chat[:-2], chat):  # the chat so far, then its next turn
            before = _embedded(service.url)
            # a connection per request, as many chat backends send them
            with httpx.Client(base_url=service.url, timeout=60) as c:
                answer = c.post("/v1/classify", json={"messages": messages})
            assert answer.status_code == 200
            assert answer.json()["route"] == "coding"
            turns.append(_embedded(service.url) - before)
    assert turns == [11.0, 2.0]
