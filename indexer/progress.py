"""Progress on stderr for the slow steps (embedding, calibration search, evaluation).

A terminal gets one line redrawn in place; anything else (a log file, a pipe) a line at every
tenth of the work, so a captured run shows how far it got without flooding the log.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from router_core import NoSteps, Steps

__all__ = ["NoSteps", "Progress", "Steps"]


class Progress:
    """Stages of counted work, each shown as `label  done/total (share)  elapsed`."""

    def __init__(self, *, enabled: bool, stream: TextIO | None = None, min_interval_s: float = 0.2) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval_s = min_interval_s
        self._label = ""
        self._total = 0
        self._done = 0
        self._started = 0.0
        self._drawn = 0.0
        self._tenth = -1

    def stage(self, label: str, total: int) -> None:
        """Start counting `total` steps of a new stage (the previous one is finished)."""
        self.finish()
        self._label, self._total, self._done = label, max(total, 0), 0
        self._started = time.perf_counter()
        self._drawn, self._tenth = 0.0, -1
        self._draw(force=True)

    def advance(self, steps: int = 1) -> None:
        """Count `steps` more steps of the current stage."""
        if not self._label:
            return
        self._done = min(self._total, self._done + steps)
        self._draw(force=self._done == self._total)

    def finish(self) -> None:
        """End the current stage's line."""
        if self._label and self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()
        self._label = ""

    @property
    def _tty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def _draw(self, *, force: bool) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        share = self._done / self._total if self._total else 1.0
        line = f"{self._label}  {self._done}/{self._total} ({share:.0%})  {now - self._started:.1f} s"
        if self._tty:
            if force or now - self._drawn >= self.min_interval_s:
                self.stream.write("\r" + line)
                self.stream.flush()
                self._drawn = now
            return
        tenth = int(share * 10)
        if tenth != self._tenth:
            self._tenth = tenth
            self.stream.write(line + "\n")
            self.stream.flush()
