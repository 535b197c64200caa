"""Whether a pass may use a spare core (service.routing.idle_cores): the kernel's count of
runnable threads, read from /proc/loadavg, and the recent asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.routing.idle_cores import BUSY_SHARE, IdleCores


def loadavg(tmp_path: Path, running: int) -> Path:
    path = tmp_path / "loadavg"
    path.write_text(f"0.52 0.58 0.59 {running}/312 41234\n")
    return path


def test_the_machines_runnable_threads_are_read_from_the_kernel() -> None:
    idle = IdleCores()
    try:
        running = idle.runnable()
        assert running is not None and running >= 1  # this test's own thread runs
    finally:
        idle.close()
    assert idle.runnable() is None and not idle.spare()  # closed: no core is spare


@pytest.mark.parametrize(("running", "cores", "spare"), [(1, 2, True), (2, 2, False), (3, 4, True), (1, 1, False)])
def test_a_core_is_spare_when_fewer_threads_than_cores_run(
    tmp_path: Path, running: int, cores: int, spare: bool
) -> None:
    idle = IdleCores(str(loadavg(tmp_path, running)), cores=cores)
    assert idle.spare() is spare
    idle.close()


def test_a_machine_busy_at_recent_asks_spares_nothing_at_an_idle_instant(tmp_path: Path) -> None:
    path = loadavg(tmp_path, 1)
    idle = IdleCores(str(path), cores=2)
    assert idle.spare()
    loadavg(tmp_path, 2)
    assert not any(idle.spare() for _ in range(4))  # every core taken
    loadavg(tmp_path, 1)
    answers = [idle.spare() for _ in range(10)]
    assert answers[:3] == [False, False, False]  # idle now, but busy at most recent asks
    assert answers[-1] and idle.busy < BUSY_SHARE  # spare again once the busy asks are past
    idle.close()


@pytest.mark.parametrize("content", ["", "garbage", "0.1 0.2 0.3 x/100 1", "0.1 0.2 0.3"])
def test_an_unreadable_count_spares_nothing(tmp_path: Path, content: str) -> None:
    path = tmp_path / "loadavg"
    path.write_text(content)
    idle = IdleCores(str(path), cores=2)
    assert idle.runnable() is None and not idle.spare()
    idle.close()
    missing = IdleCores(str(tmp_path / "absent"), cores=2)
    assert not missing.spare()
