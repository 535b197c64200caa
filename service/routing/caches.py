"""Bounded caches of the routing stage: message vectors, and the decision model's answers."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Sequence
from typing import Generic, TypeVar

import numpy as np

from router_core import Embedder
from router_core.embedding import Vectors
from service.routing.shared_vectors import SharedVectors

V = TypeVar("V")


class LRU(Generic[V]):
    """A thread-safe least-recently-used map with hit and miss counts."""

    def __init__(self, capacity: int) -> None:
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        """The value, freshened, or None."""
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: V) -> None:
        """Store `value`, dropping the least recently used entry beyond capacity."""
        if self._capacity <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        """Whether `key` is held (counts neither a hit nor a miss, freshens nothing)."""
        with self._lock:
            return key in self._items

    def through(
        self,
        keys: Sequence[Hashable],
        compute: Callable[[list[int]], Sequence[V]],
        keep: Callable[[int], bool] = lambda _i: True,
    ) -> tuple[list[V], list[int]]:
        """The value of every key, in order: cached ones, and the rest from one call of
        `compute(positions of the missing keys)`, stored where `keep(position)`. Returns the
        values and the missing positions."""
        found: list[V | None] = [self.get(key) for key in keys]
        missing = [i for i, value in enumerate(found) if value is None]
        if missing:
            for i, value in zip(missing, compute(missing), strict=True):
                found[i] = value
                if keep(i):
                    self.put(keys[i], value)
        return [value for value in found if value is not None], missing


class VectorCache:
    """Vectors of message texts per model, so a chat's history is embedded once, not on every
    turn: each request embeds only the texts this process has not seen with this model, nor
    (with `shared`, several worker processes) any other worker."""

    def __init__(self, capacity: int, shared: SharedVectors | None = None) -> None:
        self._lru: LRU[np.ndarray] = LRU(capacity)
        self._shared = shared

    def vectors(
        self,
        embedder: Embedder,
        texts: Sequence[str],
        encode: Callable[[list[str]], Vectors],
        shared: Collection[str] = frozenset(),
    ) -> tuple[Vectors, int]:
        """Vectors of `texts` in order (rows), and how many had to be embedded. Only the texts
        in `shared` (conversations' messages: a chat's next turn may reach another worker) are
        read from and written to the workers' shared table; single queries stay out of it."""
        if not texts:
            return np.zeros((0, embedder.dimension), dtype=np.float32), 0
        embedded = 0

        def compute(positions: list[int]) -> list[np.ndarray]:
            nonlocal embedded
            wanted = [texts[i] for i in positions]
            out = self._from_other_workers(embedder, wanted, shared)
            new = [j for j, row in enumerate(out) if row is None]
            if new:
                vectors = encode([wanted[j] for j in new])
                embedded += len(new)
                for j, row in zip(new, vectors, strict=True):
                    out[j] = row.copy()  # each row copied: a kept vector must not hold its batch alive
                self._to_other_workers(embedder, [(wanted[j], out[j]) for j in new if wanted[j] in shared])
            return [row for row in out if row is not None]

        rows, _ = self._lru.through([(embedder.model_id, text) for text in texts], compute)
        return np.stack(rows).astype(np.float32, copy=False), embedded

    def _from_other_workers(
        self, embedder: Embedder, texts: list[str], shared: Collection[str]
    ) -> list[np.ndarray | None]:
        """Each text's vector from the workers' shared table, for those of `shared` it holds."""
        out: list[np.ndarray | None] = [None] * len(texts)
        common = [j for j, text in enumerate(texts) if text in shared]
        if self._shared is None or not common:
            return out
        found = self._shared.get(embedder.model_id, embedder.dimension, [texts[j] for j in common])
        for j, row in zip(common, found, strict=True):
            out[j] = row
        return out

    def _to_other_workers(self, embedder: Embedder, pairs: list[tuple[str, np.ndarray | None]]) -> None:
        """Store (text, vector) pairs in the workers' shared table."""
        rows = [(text, row) for text, row in pairs if row is not None]
        if self._shared is not None and rows:
            self._shared.put(embedder.model_id, [t for t, _ in rows], np.stack([r for _, r in rows]))

    def has(self, model_id: str, dimension: int, text: str) -> bool:
        """Whether `text`'s vector under `model_id` is held here or by the workers' shared table
        (no statistics counted)."""
        if (model_id, text) in self._lru:
            return True
        return self._shared is not None and self._shared.has(model_id, dimension, text)

    @property
    def stats(self) -> tuple[int, int, int]:
        """(hits, misses, entries)."""
        return self._lru.hits, self._lru.misses, len(self._lru)
