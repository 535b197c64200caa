"""Follow the store's live pointer: serve one opened version, swap to a new one atomically.

What is served is a pair: an index version and the embedding model it was built with. When a
new version records another model (after fine-tuning, say) and the service follows the index's
model, that model is loaded before the switch, so queries are never embedded with a model that
does not match the index. A request takes a lease on the pair it started with and computes its
whole response from it; a replaced version is closed (and may then be deleted by the indexer)
when its last lease ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from router_core import Embedder, IndexIncompatible, IndexMissing, IndexStore, OpenIndex, RouterError
from router_core.embedding import ParityResult, Reference, require_parity
from router_core.manifest import IndexManifest

log = logging.getLogger("router.index")
# A version that could not be opened is tried again after this long, doubling up to the max
# (opening may start a trial process; a bad version must not cost that every reload interval).
RETRY_MIN_S = 1.0
RETRY_MAX_S = 60.0
ModelLoader = Callable[[IndexManifest], Embedder]


@dataclass(frozen=True)
class Served:
    """An index version, the model its queries are embedded with, and how that model's vectors
    compared with the version's reference vectors (None: the version records none)."""

    index: OpenIndex
    embedder: Embedder
    parity: ParityResult | None = None


@dataclass
class _Slot:
    served: Served
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


def check_parity(index: OpenIndex, embedder: Embedder) -> ParityResult | None:
    """Refuse a backend that does not reproduce the version's reference vectors (ParityFailed);
    None when the version was built before reference vectors were recorded."""
    recorded = index.manifest.reference
    if not recorded:
        log.warning(
            "index version %s records no reference vectors: the %s backend's exactness is not checked "
            "(re-index to record them)",
            index.version,
            embedder.backend,
        )
        return None
    return require_parity(Reference.from_dict(recorded), embedder, index.version)


class IndexFollower:
    """Holds the pair being served and follows the store's live pointer.

    With a `loader`, a version built with another model brings its model along; without one,
    such a version is refused and the current pair keeps serving.
    """

    def __init__(self, store: IndexStore, embedder: Embedder, loader: ModelLoader | None = None) -> None:
        self._store = store
        self._initial = embedder
        self._loader = loader
        self._slot: _Slot | None = None
        self._swap = threading.Lock()
        # One refresh at a time (the reload task and an admin re-index may both call it):
        # otherwise both could open the new version and load its model.
        self._refreshing = threading.Lock()
        self._closed = False
        self.last_error: str | None = None
        # Parity results by (model object, reference): versions that carry the same reference
        # vectors over (incremental re-indexes) are not checked again with the same model.
        self._parity: dict[tuple[int, str, str, str], ParityResult] = {}
        self._refused: tuple[str, float, float] | None = None  # version, retry at, delay

    def load_live(self) -> OpenIndex:
        """Open the live version; raise IndexMissing or IndexIncompatible when it cannot serve."""
        version = self._store.live_version()
        if version is None:
            raise IndexMissing(
                "no index found: run the re-index command (python -m indexer) before starting the service"
            )
        self._install(version)
        return self.current

    @property
    def current(self) -> OpenIndex:
        """The version new requests are served from."""
        return self.served.index

    @property
    def embedder(self) -> Embedder:
        """The model new requests are embedded with."""
        slot = self._slot
        return slot.served.embedder if slot is not None else self._initial

    @property
    def served(self) -> Served:
        """The pair new requests are served from."""
        slot = self._slot
        if slot is None:
            raise IndexMissing("no index version is loaded")
        return slot.served

    def refresh(self) -> bool:
        """Switch to the live version if it changed; True when it did. Never raises: the
        reload task must outlive any one bad version, whatever the error. A version that could
        not be opened is tried again only after a growing delay."""
        with self._refreshing:
            if self._closed:
                return False
            version: str | None = None
            try:
                version = self._store.live_version()
                if version is None or (self._slot and self._slot.served.index.version == version):
                    self.last_error = None
                    self._refused = None
                    return False
                refused = self._refused
                if refused is not None and refused[0] == version and time.monotonic() < refused[1]:
                    return False  # last_error still says why
                self._install(version)
            except Exception as exc:
                self.last_error = str(exc) if isinstance(exc, RouterError) else repr(exc)
                log.warning("staying on the current index version: %s", self.last_error)
                if version is not None:
                    previous = self._refused
                    delay = min(RETRY_MAX_S, previous[2] * 2) if previous and previous[0] == version else RETRY_MIN_S
                    self._refused = (version, time.monotonic() + delay, delay)
                return False
            self.last_error = None
            self._refused = None
            return True

    def _install(self, version: str) -> None:
        index = self._store.open_version(version)
        try:
            embedder = self._model_for(index.manifest)
            check_compatible(index, embedder)
            parity = self._parity_of(index, embedder)
        except BaseException:
            index.close()
            raise
        with self._swap:
            old, self._slot = self._slot, _Slot(Served(index, embedder, parity))
        log.info(
            "serving index version %s with model %s on backend %s (parity: %s)",
            version,
            embedder.model_id,
            embedder.backend,
            "not recorded" if parity is None else f"min cosine {parity.min_cosine}",
        )
        if old is not None:
            self._retire(old)

    def _parity_of(self, index: OpenIndex, embedder: Embedder) -> ParityResult | None:
        recorded = index.manifest.reference
        vectors = str(recorded.get("vectors_f32le_b64", "")) if recorded else ""
        key = (id(embedder), embedder.model_id, embedder.backend, vectors)
        if recorded and key in self._parity:
            return self._parity[key]
        result = check_parity(index, embedder)
        if result is not None:
            self._parity[key] = result
        return result

    def _model_for(self, manifest: IndexManifest) -> Embedder:
        current = self.embedder
        if manifest.model_id == current.model_id or self._loader is None:
            return current
        log.info("index version %s needs model %s: loading it", manifest.version, manifest.model_id)
        return self._loader(manifest)

    @contextmanager
    def lease(self) -> Iterator[Served]:
        """The current pair, kept open until the block ends."""
        with self._swap:
            slot = self._slot
            if slot is None:
                raise IndexMissing("no index version is loaded")
            with slot.lock:
                slot.leases += 1
        try:
            yield slot.served
        finally:
            with slot.lock:
                slot.leases -= 1
                done = slot.retired and slot.leases == 0
            if done:
                slot.served.index.close()

    def _retire(self, slot: _Slot) -> None:
        with slot.lock:
            slot.retired = True
            done = slot.leases == 0
        if done:
            slot.served.index.close()

    def close(self) -> None:
        """Close the served version; a refresh in flight finishes first, none runs after."""
        with self._refreshing, self._swap:
            self._closed = True
            slot, self._slot = self._slot, None
        if slot is not None:
            self._retire(slot)
