"""Stopping a child process the benches and tests started."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(proc: subprocess.Popen[Any], timeout: float = 60.0, *, terminate: bool = True) -> None:
    """SIGTERM (unless `terminate` is False: the caller asked it to exit), wait up to `timeout`
    seconds, then SIGKILL and reap."""
    if terminate and proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
