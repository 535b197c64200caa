"""Running and stopping the child processes the benches and tests start."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
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


def run_checked(
    command: Sequence[str], *, cwd: Path, timeout: float, what: str, env: Mapping[str, str] | None = None
) -> str:
    """Run `command` to its end (with the environment plus `env`) and answer its stdout;
    RuntimeError naming `what`, the exit status and the end of its stderr when it fails."""
    done = subprocess.run(
        list(command),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} exited with {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout
