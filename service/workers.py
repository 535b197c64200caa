"""Several worker processes behind one port: the supervisor `python -m service` becomes when
`ROUTER_HTTP__WORKERS` is above 1.

The supervisor binds and listens on the port itself (a port already taken is refused at once,
even by another instance of the service), starts the workers (`python -m service.worker`,
each a process of its own: its own model instance and interpreter lock), and hands every
accepted connection to the next ready worker in turn over a Unix socket. Handing connections
over, rather than letting every worker accept on a shared socket, spreads kept-alive
connections evenly: an event loop accepts every pending connection when it wakes, so one
worker would take a whole burst of clients.

With `ROUTER_HTTP__PIN_WORKERS` each worker runs on its share of the cores (`cpu_share`: its own
core when there are as many cores as workers), so its model runtime sizes its threads to that
share instead of every worker running a pool as wide as the machine; by default the system
schedules them. Either way a worker fills its passes with its share of the pass budget
(`service.worker.pass_share`).

Start-up: worker 0 starts first (it migrates the decision log's database and converts the model
into the shared cache if needed), then the others together. A worker that cannot start stops
the service with its exit status (its message, e.g. a missing index, is on stderr). Shut-down:
SIGTERM or SIGINT stops accepting, asks every worker to finish its requests (SIGTERM), waits,
then kills what is left. A worker that dies while serving stops the service too (exit 1), for
the orchestrator to restart as it would a single process. Workers receive SIGTERM from the
kernel should the supervisor die (`service.worker.die_with_parent`).

What each worker holds on its own (not shared): rate limits and failed-authentication counts
(each allows its share of those), the decision log's in-memory recent decisions and its writer
(SQLite waits for its lock), the vector cache, the evaluations in progress. The metrics are
shared through a directory the supervisor makes for prometheus_client's multiprocess mode
(`service.metrics`). README, "Several worker processes".
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from service.metrics import MULTIPROCESS_DIR
from service.routing.shared_vectors import SHARED_DIR_ENV, make_shared_dir
from service.settings import ServiceSettings
from service.worker import READY

log = logging.getLogger("router.workers")
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.5


@dataclass(eq=False)
class Worker:
    """One worker process and the supervisor's end of its channel."""

    number: int
    proc: subprocess.Popen[bytes]
    channel: socket.socket
    ready: bool = False


def supervise(settings: ServiceSettings) -> int:
    """Serve with `settings.http.workers` worker processes until SIGTERM or SIGINT; the exit status."""
    http = settings.http
    host = http.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, http.port), family=family, backlog=2048)
    except OSError as exc:
        print(f"error: the service cannot start: cannot listen on {http.host}:{http.port}: {exc}", file=sys.stderr)
        return 2
    stop: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    workers: list[Worker] = []
    metrics = Path(tempfile.mkdtemp(prefix="router-metrics-"))  # every worker's, for /metrics
    vectors: Path | None = None
    try:
        vectors = make_shared_dir()  # the message vectors any worker embedded (service.routing.shared_vectors)
        env = {**os.environ, MULTIPROCESS_DIR: str(metrics), SHARED_DIR_ENV: str(vectors)}
        workers.append(_start(0, http.workers, pin=http.pin_workers, env=env))
        status = _await_ready(workers[:1], stop)
        if status is None:
            workers += [_start(i, http.workers, pin=http.pin_workers, env=env) for i in range(1, http.workers)]
            status = _await_ready(workers[1:], stop)
        if status is None:
            _log_started(workers, http.host, http.port)
            status = _dispatch(listener, workers, stop)
        return status
    finally:
        listener.close()
        _stop_all(workers)
        shutil.rmtree(metrics, ignore_errors=True)
        if vectors is not None:
            shutil.rmtree(vectors, ignore_errors=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def cpu_share(number: int, workers: int, cores: list[int]) -> list[int]:
    """The cores worker `number` of `workers` runs on: an equal slice of `cores` when there are
    at least as many cores as workers (the last takes the remainder), else all of them."""
    if workers > len(cores):
        return cores
    size = len(cores) // workers
    return cores[number * size : (number + 1) * size if number < workers - 1 else len(cores)]


def _start(number: int, workers: int, *, pin: bool, env: dict[str, str]) -> Worker:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    command = [sys.executable, "-m", "service.worker", "--channel-fd", str(theirs.fileno()), "--worker", str(number)]
    if pin:
        cpus = cpu_share(number, workers, sorted(os.sched_getaffinity(0)))
        command += ["--cpus", ",".join(map(str, cpus))]
    proc = subprocess.Popen(command, pass_fds=[theirs.fileno()], env=env)
    theirs.close()
    return Worker(number, proc, ours)


def _await_ready(starting: list[Worker], stop: list[int]) -> int | None:
    """None once every worker of `starting` said it is ready; else the status to exit with."""
    waiting = list(starting)
    while waiting:
        if stop:
            return 0
        for worker in list(waiting):
            code = worker.proc.poll()
            if code is not None:
                log.error("worker %d exited with status %s while starting; stopping", worker.number, code)
                return code if code > 0 else 1
            readable = selectors.DefaultSelector()
            with readable:
                readable.register(worker.channel, selectors.EVENT_READ)
                said = readable.select(timeout=_POLL_S / max(1, len(waiting))) and worker.channel.recv(16)
            if said == READY:
                worker.ready = True
                worker.channel.setblocking(False)
                waiting.remove(worker)
    return None


def _dispatch(listener: socket.socket, workers: list[Worker], stop: list[int]) -> int:
    """Hand accepted connections to the workers in turn until asked to stop or a worker dies."""
    turn = 0
    with selectors.DefaultSelector() as selector:
        selector.register(listener, selectors.EVENT_READ)
        while True:
            if stop:
                log.info("stopping %d workers (signal %d)", len(workers), stop[0])
                return 0
            for worker in workers:
                code = worker.proc.poll()
                if code is not None:
                    log.error(
                        "worker %d (pid %d) exited with status %s; stopping", worker.number, worker.proc.pid, code
                    )
                    return 1
            if not selector.select(timeout=_POLL_S):
                continue
            with contextlib.suppress(BlockingIOError, InterruptedError):
                connection, _ = listener.accept()
                with connection:
                    turn = _hand_over(connection, workers, turn)


def _hand_over(connection: socket.socket, workers: list[Worker], turn: int) -> int:
    """Send the connection to the next worker that takes it; the next turn."""
    for step in range(len(workers)):
        worker = workers[(turn + step) % len(workers)]
        try:
            socket.send_fds(worker.channel, [b"c"], [connection.fileno()])
        except OSError:  # its queue is full (busy) or it has gone: the next one
            continue
        return (turn + step + 1) % len(workers)
    log.warning("no worker took a connection; closed it")
    return turn


def _log_started(workers: list[Worker], host: str, port: int) -> None:
    memory = ", ".join(f"worker {w.number} pid {w.proc.pid} {_memory(w.proc.pid)}" for w in workers)
    log.info("serving on %s:%d with %d worker processes: %s", host, port, len(workers), memory)


def _memory(pid: int) -> str:
    """RSS and PSS (shared pages divided among their sharers) of a process, in MB."""
    figures = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            if name in ("Rss", "Pss"):
                figures[name] = int(value.split()[0]) / 1024
    return " / ".join(f"{name} {mb:.0f} MB" for name, mb in figures.items()) or "memory unknown"


def _stop_all(workers: list[Worker]) -> None:
    """SIGTERM every worker still running, wait for them, kill those that outlive the timeout."""
    for worker in workers:
        worker.channel.close()
        if worker.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for worker in workers:
        try:
            worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker %d did not stop within %.0f s; killing it", worker.number, STOP_TIMEOUT_S)
            worker.proc.kill()
            worker.proc.wait()
