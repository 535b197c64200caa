"""`python -m service` in a process of its own on a loopback port, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devkit.processes import run_checked, stop_process
from devkit.serving import ROOT, free_port


@dataclass(frozen=True)
class ServiceProcess:
    """A running service: its base URL and process, and what it wrote to stderr."""

    url: str
    proc: subprocess.Popen[bytes]
    err: IO[bytes]

    def stderr(self) -> str:
        """Everything the service (every worker) wrote to stderr so far."""
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")


@contextmanager
def service_process(
    env: Mapping[str, str], *, startup_timeout: float = 180.0, workers: int | None = 1, root: Path = ROOT
) -> Iterator[ServiceProcess]:
    """Run the service with the environment plus `env` (ROUTER_* settings) on a free loopback
    port until the block ends; ready once /readyz answers 200. RuntimeError with the end of the
    service's stderr when it exits or is not ready in time.

    `workers` worker processes (`ROUTER_HTTP__WORKERS`; 1, one process, unless `env` or the
    argument says otherwise: a test reading one process's /metrics needs one process; None: not
    set, for a checkout older than the setting). With
    more than one, `proc` is the supervisor and ready means every worker is. `root`: the checkout
    whose service runs (another one: a before/after in one run)."""
    port = free_port()
    full = {
        **os.environ,
        **({"ROUTER_HTTP__WORKERS": str(workers)} if workers is not None else {}),
        **env,
        "ROUTER_HTTP__HOST": "127.0.0.1",
        "ROUTER_HTTP__PORT": str(port),
    }
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty service never blocks on it
        proc = subprocess.Popen(
            [sys.executable, "-m", "service"], cwd=root, env=full, stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            _wait_ready(url, proc, err, startup_timeout)
            yield ServiceProcess(url, proc, err)
        finally:
            stop_process(proc)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], err: IO[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace")[-3000:]
            state = f"exited with {proc.returncode}" if proc.poll() is not None else f"not ready after {timeout:.0f} s"
            raise RuntimeError(f"the service {state}: {tail}")
        time.sleep(0.25)


def index_with_checkout(root: Path, env: Mapping[str, str], *, timeout: float = 600.0) -> None:
    """`python -m indexer reindex` of the checkout at `root` with the environment plus `env`
    (ROUTER_ROUTES_DIR, ROUTER_INDEX__DATA_DIR...): an index that checkout's service can open.
    A newer indexer may record parameters an older service does not know; a before/after
    serves each checkout the index its own indexer built. RuntimeError with the end of stderr."""
    run_checked(
        [sys.executable, "-m", "indexer", "reindex", "--quiet"],
        cwd=root,
        env=env,
        timeout=timeout,
        what=f"the indexer of {root}",
    )
