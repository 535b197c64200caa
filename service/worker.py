"""One worker process of a multi-process service (`python -m service.worker`, started by the
supervisor, `service.workers`; never by hand).

The worker builds its own object graph (its own model instance, the route sets' live index
versions opened read-only beside the other workers) and serves the connections the supervisor
accepted and hands it over a Unix socket (`SCM_RIGHTS`), with the same uvicorn protocol, limits
and app as a single process. It tells the supervisor it is ready on that socket, and stops when
the supervisor says so (SIGTERM), dies (the kernel's parent-death signal) or closes the socket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn

from service.app import create_app
from service.http_server import server_config
from service.observability import configure_logging
from service.settings import ServiceSettings
from service.startup import build_services, freeze_start_up_heap, load_settings

log = logging.getLogger("router.worker")
READY = b"ready"
_PR_SET_PDEATHSIG = 1


class HandedServer(uvicorn.Server):
    """uvicorn serving connections handed over `channel` instead of a listening socket of its own."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self._channel = channel

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(3)  # uvicorn's STARTUP_FAILURE: the app's start-up failed and said why
        config, loop = self.config, asyncio.get_running_loop()

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            protocol: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=_loop
            )
            return protocol

        self.servers = []
        self._channel.setblocking(False)
        loop.add_reader(self._channel.fileno(), self._take, loop, create_protocol)
        self.started = True
        self._channel.send(READY)

    def _take(self, loop: asyncio.AbstractEventLoop, factory: Callable[[], asyncio.Protocol]) -> None:
        """Serve the connections waiting on the channel; stop when the supervisor has gone."""
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(self._channel, 16, 8)
            except BlockingIOError:
                return
            except OSError:
                message, fds = b"", []
            if not message and not fds:  # end of file: the supervisor closed it or died
                loop.remove_reader(self._channel.fileno())
                self.should_exit = True
                return
            for fd in fds:
                connection = socket.socket(fileno=fd)
                connection.setblocking(False)
                task = loop.create_task(loop.connect_accepted_socket(factory, connection))
                task.add_done_callback(_log_failed_handover)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(ValueError, OSError):  # already removed, or the channel closed
            asyncio.get_running_loop().remove_reader(self._channel.fileno())
        await super().shutdown(sockets)


def _log_failed_handover(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("a connection handed over by the supervisor could not be served: %s", task.exception())


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the supervisor dies (Linux), so no worker outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the supervisor died before the request above
        raise SystemExit(1)


def pass_share(settings: ServiceSettings, share: float) -> ServiceSettings:
    """The settings of a worker whose share of the machine's cores is `share` (its own cores
    over all, when pinned; one over the number of workers, when the system schedules them): its
    forward passes hold that share of `ROUTER_LIMITS__MAX_MICRO_BATCH_CHARS` (at least 1). With
    every worker busy a pass gets only that share of the cores, so a full pass would take 1/share
    times as long as in one process, and a query arriving behind another caller's big batch waits
    for the pass running (`service.routing.batching`)."""
    limits = settings.limits
    chars = max(1, int(limits.max_micro_batch_chars * min(1.0, share)))
    return settings.model_copy(update={"limits": limits.model_copy(update={"max_micro_batch_chars": chars})})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.worker", description=__doc__)
    parser.add_argument("--channel-fd", type=int, required=True, help="the Unix socket to the supervisor")
    parser.add_argument("--worker", type=int, required=True, help="this worker's number, from 0")
    parser.add_argument("--cpus", default="", help="the cores to run on, comma-separated (default: all)")
    args = parser.parse_args(argv)
    die_with_parent()
    machine = len(os.sched_getaffinity(0))
    if args.cpus:  # before the model loads: its runtime sizes its thread pools by the usable cores
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    channel = socket.socket(fileno=args.channel_fd)
    settings = load_settings()
    if settings is None:
        return 2
    configure_logging(settings.log.level, json_logs=settings.log.json_format)
    own = len(os.sched_getaffinity(0)) / machine if args.cpus else 1 / settings.http.workers
    settings = pass_share(settings, own)
    services = build_services(settings, processes=settings.http.workers)
    if services is None:
        return 2
    app = create_app(services=services)
    freeze_start_up_heap()
    HandedServer(server_config(app, settings.http, log_config=None), channel).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
