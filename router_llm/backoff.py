"""Delays between retries of one model: exponential, capped, with jitter."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from router_llm.settings import LLMSettings


@dataclass(frozen=True)
class Backoff:
    """`initial_s * multiplier**(retry-1)`, capped at `max_s`, spread by +/- `jitter`."""

    initial_s: float = 0.5
    multiplier: float = 2.0
    max_s: float = 8.0
    jitter: float = 0.2

    @classmethod
    def from_settings(cls, llm: LLMSettings) -> Backoff:
        """The backoff configured in `settings.llm`."""
        return cls(llm.backoff_initial_s, llm.backoff_multiplier, llm.backoff_max_s, llm.backoff_jitter)

    def delay(
        self,
        retry: int,
        *,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait before retry number `retry` (1-based).

        A server's Retry-After is honoured up to `max_s`.
        """
        base = min(self.max_s, self.initial_s * self.multiplier ** max(0, retry - 1))
        spread = base * self.jitter
        wait = base - spread + 2 * spread * rand()
        if retry_after is not None:
            wait = max(wait, retry_after)
        return max(0.0, min(self.max_s, wait))
