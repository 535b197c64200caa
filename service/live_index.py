"""Follow the store's live pointer: serve one opened version, swap to a new one atomically.

A request takes a lease on the version it started with and computes its whole response from
it; a replaced version is closed (and may then be deleted by the indexer) when its last lease
ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from router_core import (
    Embedder,
    IndexIncompatible,
    IndexMissing,
    IndexStore,
    OpenIndex,
    RouterError,
)

log = logging.getLogger("router.index")


@dataclass
class _Slot:
    index: OpenIndex
    leases: int = 0
    retired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def check_compatible(index: OpenIndex, embedder: Embedder) -> None:
    """Refuse a version built with another embedding model or dimension."""
    m = index.manifest
    if m.model_id != embedder.model_id or m.dimension != embedder.dimension:
        raise IndexIncompatible(
            f"index version {m.version} was built with model {m.model_id!r} (dim {m.dimension}) "
            f"but the service loaded {embedder.model_id!r} (dim {embedder.dimension}); "
            "re-index with the service's model or start the service with the index's model"
        )


class IndexFollower:
    """Holds the version being served and follows the store's live pointer."""

    def __init__(self, store: IndexStore, embedder: Embedder) -> None:
        self._store = store
        self._embedder = embedder
        self._slot: _Slot | None = None
        self._swap = threading.Lock()
        self.last_error: str | None = None

    def load_live(self) -> OpenIndex:
        """Open the live version; raise IndexMissing or IndexIncompatible when it cannot serve."""
        version = self._store.live_version()
        if version is None:
            raise IndexMissing(
                "no index found: run the re-index command (python -m indexer) before starting "
                "the service"
            )
        self._install(version)
        return self.current

    @property
    def current(self) -> OpenIndex:
        """The version new requests are served from."""
        slot = self._slot
        if slot is None:
            raise IndexMissing("no index version is loaded")
        return slot.index

    def refresh(self) -> bool:
        """Switch to the live version if it changed; True when it did. Never raises."""
        try:
            version = self._store.live_version()
            if version is None or (self._slot and self._slot.index.version == version):
                self.last_error = None
                return False
            self._install(version)
        except RouterError as exc:
            self.last_error = str(exc)
            log.warning("staying on the current index version: %s", exc)
            return False
        self.last_error = None
        return True

    def _install(self, version: str) -> None:
        index = self._store.open_version(version)
        try:
            check_compatible(index, self._embedder)
        except IndexIncompatible:
            index.close()
            raise
        with self._swap:
            old, self._slot = self._slot, _Slot(index)
        log.info("serving index version %s", version)
        if old is not None:
            self._retire(old)

    @contextmanager
    def lease(self) -> Iterator[OpenIndex]:
        """The current version, kept open until the block ends."""
        with self._swap:
            slot = self._slot
            if slot is None:
                raise IndexMissing("no index version is loaded")
            with slot.lock:
                slot.leases += 1
        try:
            yield slot.index
        finally:
            with slot.lock:
                slot.leases -= 1
                done = slot.retired and slot.leases == 0
            if done:
                slot.index.close()

    def _retire(self, slot: _Slot) -> None:
        with slot.lock:
            slot.retired = True
            done = slot.leases == 0
        if done:
            slot.index.close()

    def close(self) -> None:
        """Close the served version."""
        with self._swap:
            slot, self._slot = self._slot, None
        if slot is not None:
            self._retire(slot)
