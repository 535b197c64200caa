"""Whether the machine has a core to spare at this moment.

A pass that serves one caller with nothing else waiting may split a small encode across the
cores for some more work (router_core.embedding.spare_cores): a live chat's next turn then took
0.5 and 1.6 ms less in two runs (BENCHMARKS.md). But "nothing waiting in this process" is not
"an idle core": with several worker processes (the default) the other core is often busy with
another worker's pass, and the extra work then slows both (measured, 2 worker processes, 2
clients sending a chat's turns, the split without this check against the code before it: 84.2
against 87.2 requests/s, the next turn's p50 12.8 against 10.9 ms). So the pass also asks the
kernel: Linux counts the threads running or ready to run (the fourth field of /proc/loadavg,
"running/total"), read through a descriptor kept open (about 1 microsecond a read). A core is
spare when fewer threads than this process's usable cores are runnable, the calling thread
among them, and most recent asks found one too (a load average would lag by a minute: an
index build just before would keep a lone user from the second core). Elsewhere (no /proc), or
when the file cannot be read or parsed, no core is spare.
"""

from __future__ import annotations

import contextlib
import os

from router_core.embedding import usable_cores

LOADAVG = "/proc/loadavg"
RECENT = 0.2
"""Weight of the latest ask in the moving average of asks that found no idle core (about the
last five asks)."""
BUSY_SHARE = 0.25
"""A core is spare only while fewer than this share of the recent asks found none: under a
steady load a split begun at an idle instant would meet the other worker's next pass. With both
checks, 2 clients on 2 worker processes: 10 of a worker's 800 asks found an idle core, and the
throughput was the code before's (two runs: 91.9 and 90.1 against 88.9 and 90.6 requests/s,
89.6 and 89.4 against 90.2 and 93.1). With the instantaneous check alone: 81.2 and 83.9 against
88.0 and 84.9."""


class IdleCores:
    """Asks the kernel how many threads are runnable, through one open descriptor."""

    def __init__(self, path: str = LOADAVG, cores: int | None = None) -> None:
        self._cores = usable_cores() if cores is None else max(1, cores)
        self.busy = 0.0  # moving average of the asks that found every core taken
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY)
        except OSError:
            self._fd = None

    def runnable(self) -> int | None:
        """Threads running or ready to run on the machine now (None: not known)."""
        if self._fd is None:
            return None
        try:
            return int(os.pread(self._fd, 256, 0).split()[3].split(b"/")[0])
        except (OSError, IndexError, ValueError):
            return None

    def spare(self) -> bool:
        """True when a core of this process's is idle now besides the calling thread's, and was
        at most of the recent asks (`busy`, their moving average, under BUSY_SHARE). One caller
        at a time (the pass thread)."""
        if self._cores < 2:
            return False
        running = self.runnable()
        if running is None:
            return False
        idle_now = running < self._cores
        self.busy += RECENT * ((0.0 if idle_now else 1.0) - self.busy)
        return idle_now and self.busy < BUSY_SHARE

    def close(self) -> None:
        """Close the descriptor (then no core is spare)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
