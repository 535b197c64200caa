"""The decision log's one writer: a thread that drains a bounded inbox into the database.

Requests only append to the inbox (a lock held for an append; never the database, and the
writer is not woken): when it holds `capacity` records the record is dropped and counted, and
the request goes on. The writer writes what has gathered every 0.25 s (or at 512 records) in one
transaction, so its cost does not fall on each request. Commands
(feedback, review actions) travel through the same inbox, after the records queued before them,
and are never dropped; their caller awaits the result. Retention and the row cap are enforced
here too, at start and every `purge_every_s`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from router_core.decision_log import DecisionRecord
from router_core.decision_log.store import DecisionStore
from router_core.errors import RouterError
from service.decision_log.metrics import DecisionLogMetrics

log = logging.getLogger("router.decision_log")
T = TypeVar("T")
_BATCH = 512
_FLUSH_S = 0.25  # records wait at most this long: written a few times a second, not once a request
_STOP = object()


@dataclass(frozen=True)
class _Command:
    fn: Callable[[DecisionStore], Any]
    done: Future[Any]


class LogWriter:
    """Writes records in batches, runs commands in order, purges on a schedule."""

    def __init__(
        self,
        store: DecisionStore,
        metrics: DecisionLogMetrics,
        *,
        capacity: int,
        max_rows: int,
        purge_every_s: float = 60.0,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._capacity = capacity
        self._max_rows = max_rows
        self._purge_every_s = purge_every_s
        self._inbox: deque[Any] = deque()
        self._records = 0  # records (not commands) in the inbox
        self._urgent = 0  # commands (and the stop) in the inbox: run them now
        self._ready = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._next_purge = 0.0
        self._last_error_log = 0.0

    def start(self) -> None:
        """Start the writer thread (purging first)."""
        self._thread = threading.Thread(target=self._run, name="decision-log-writer", daemon=True)
        self._thread.start()

    def offer(self, record: DecisionRecord) -> bool:
        """Queue a record; False (and counted) when the inbox is full."""
        with self._ready:
            if self._records >= self._capacity:
                full = True
            else:
                full = False
                self._inbox.append(record)
                self._records += 1
                if self._records >= _BATCH:
                    self._ready.notify()
        if full:
            self._metrics.dropped.labels("queue_full").inc()
            return False
        self._metrics.queued.inc()
        return True

    def call(self, fn: Callable[[DecisionStore], T]) -> Future[T]:
        """Run `fn(store)` on the writer thread after everything queued before it."""
        done: Future[T] = Future()
        with self._ready:
            self._inbox.append(_Command(fn, done))
            self._urgent += 1
            self._ready.notify()
        return done

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then end the thread."""
        if self._thread is None:
            return
        with self._ready:
            self._inbox.append(_STOP)
            self._urgent += 1
            self._ready.notify()
        self._thread.join(timeout)
        self._thread = None

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._purge_when_due()
            with self._ready:
                if not self._urgent and self._records < _BATCH:
                    # Offers do not wake the writer: it collects a batch, a command wakes it at once.
                    self._ready.wait(timeout=_FLUSH_S)
                taken: list[Any] = []
                while self._inbox and len(taken) < _BATCH:
                    entry = self._inbox.popleft()
                    taken.append(entry)
                    if not isinstance(entry, DecisionRecord):
                        self._urgent -= 1
                        break  # a command or the stop: write the records before it first
                records = [e for e in taken if isinstance(e, DecisionRecord)]
                self._records -= len(records)
            if records:
                self._metrics.queued.dec(len(records))
                self._write(records)
            tail = taken[-1] if taken else None
            if isinstance(tail, _Command):
                self._execute(tail)
            elif tail is _STOP:
                return

    def _write(self, records: list[DecisionRecord]) -> None:
        try:
            self._store.insert_many(records)
        except RouterError as exc:
            self._metrics.dropped.labels("database_error").inc(len(records))
            self._warn(f"{len(records)} decision(s) not recorded: {exc}")
            return
        self._metrics.written.inc(len(records))

    def _execute(self, command: _Command) -> None:
        if not command.done.set_running_or_notify_cancel():
            return
        try:
            command.done.set_result(command.fn(self._store))
        except BaseException as exc:  # delivered to the awaiting caller
            command.done.set_exception(exc)

    def _purge_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + self._purge_every_s
        try:
            deleted = self._store.purge(self._max_rows)
        except RouterError as exc:
            self._warn(f"retention not enforced this time: {exc}")
            return
        if deleted:
            log.info("decision log: %d decision(s) past the retention or the row cap deleted", deleted)

    def _warn(self, message: str) -> None:
        """At most one warning a minute: a database outage must not flood the logs."""
        now = time.monotonic()
        if now - self._last_error_log >= 60.0:
            self._last_error_log = now
            log.warning("decision log: %s", message)
