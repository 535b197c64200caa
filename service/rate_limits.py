"""Rate limits: token buckets per caller (and per route set), and the limit on failed
authentications per address and per presented credential."""

from __future__ import annotations

import hashlib
import math
import threading
import time


def credential_hash(token: str) -> str:
    """The full hash of a presented credential: the name of its failure bucket (never logged)."""
    return hashlib.sha256(token.encode()).hexdigest()


class FailedAuthLimiter:
    """Failed authentications, limited per client address and per presented credential, without
    locking out valid credentials from a shared address.

    - A credential that failed `per_minute` times is refused (429) from any address, unchecked
      and without charging the address: a client retrying a wrong key harms no one else.
    - An address with `per_minute` failures is blocked: the credentials it presents are still
      checked, at most `checks_per_minute` of them (so guessing stays slow), and a valid one goes
      through; an invalid one is 429. Beyond that budget, credentials are refused unchecked.
    - Credentials that have authenticated before (at most the configured keys) are always
      checked: a busy caller behind a shared address is never refused for another's failures.
    """

    def __init__(self, per_minute: int, checks_per_minute: int = 60) -> None:
        self._addresses = RateLimiter(per_minute)
        self._credentials = RateLimiter(per_minute)
        self._checks = RateLimiter(checks_per_minute)
        self._valid: set[str] = set()
        self._lock = threading.Lock()

    def admit(self, address: str, token: str) -> float:
        """0 when `token` from `address` may be checked now, else the seconds to wait."""
        credential = credential_hash(token)
        with self._lock:
            if credential in self._valid:
                return 0.0
        wait = self._credentials.wait(credential)
        if wait > 0:
            return wait
        blocked = self._addresses.wait(address)
        if blocked > 0 and self._checks.acquire(address) > 0:
            return blocked
        return 0.0

    def failed(self, address: str, token: str) -> float:
        """Count a failed authentication; when `address` was already blocked before it, the
        seconds it stays blocked (0: it was not, this failure is an ordinary 401)."""
        blocked = self._addresses.wait(address) > 0
        self._credentials.charge(credential_hash(token), 1.0)
        self._addresses.charge(address, 1.0)
        return self._addresses.wait(address) if blocked else 0.0

    def succeeded(self, token: str) -> None:
        """Remember a credential that authenticated: it is always checked from now on."""
        with self._lock:
            self._valid.add(credential_hash(token))


class RateLimiter:
    """Token buckets per caller identity.

    A request needs one token; `charge` takes more afterwards (the queries of a batch beyond
    its first), possibly below zero: the batch goes ahead, the caller's next request waits
    until the bucket has refilled past one.
    """

    def __init__(self, per_minute: int, burst: int = 0) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst or per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._next_prune = 0.0

    @property
    def enabled(self) -> bool:
        """Limits apply."""
        return self.rate > 0

    def acquire(self, identity: str, now: float | None = None) -> float:
        """0 when the request may go ahead, else the seconds to wait before retrying."""
        if not self.enabled:
            return 0.0
        t = time.monotonic() if now is None else now
        with self._lock:
            if t >= self._next_prune:
                self._prune(t)
            tokens, last = self._buckets.get(identity, (self.capacity, t))
            tokens = min(self.capacity, tokens + (t - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[identity] = (tokens - 1.0, t)
                return 0.0
            self._buckets[identity] = (tokens, t)
            return (1.0 - tokens) / self.rate

    def charge(self, identity: str, cost: float, now: float | None = None) -> None:
        """Take `cost` more tokens from `identity`'s bucket, whatever it holds."""
        if not self.enabled or cost <= 0:
            return
        t = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(identity, (self.capacity, t))
            tokens = min(self.capacity, tokens + (t - last) * self.rate)
            self._buckets[identity] = (tokens - cost, t)

    def wait(self, identity: str, now: float | None = None) -> float:
        """Seconds until `identity` has a token again (0: it has one now); takes nothing."""
        if not self.enabled:
            return 0.0
        t = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(identity, (self.capacity, t))
        tokens = min(self.capacity, tokens + (t - last) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _prune(self, t: float) -> None:
        """Forget buckets that have refilled: a full bucket is the same as none. Runs at most
        once per refill period, so memory follows the callers active in that period."""
        self._buckets = {
            k: (tokens, last)
            for k, (tokens, last) in self._buckets.items()
            if tokens + (t - last) * self.rate < self.capacity
        }
        self._next_prune = t + self.capacity / self.rate

    def __len__(self) -> int:
        """Callers currently tracked."""
        return len(self._buckets)


def retry_after_header(wait_s: float) -> str:
    """Whole seconds, at least one."""
    return str(max(1, math.ceil(wait_s)))
