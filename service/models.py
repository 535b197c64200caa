"""The embedding models the route sets serve with: one loaded model per model and runtime, shared
by every set that needs it.

Ten route sets on the default model hold one model in memory, not ten (measured in
BENCHMARKS.md, "Several route sets"). A model is kept while a set serves with it: the registry
holds it weakly, so a model no set follows any more (after a re-index switched to a fine-tuned
one, say) is released as it was with one set.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from pathlib import Path

from router_core import Embedder, embedder_from_settings
from router_core.settings import EmbeddingSettings, IndexSettings

ModelKey = tuple[str, str, str, int, Path]


def model_key(embedding: EmbeddingSettings, index: IndexSettings, model: str | None = None) -> ModelKey:
    """What makes two loads the same model: its name or path, the runtime and its threads, and
    the conversion cache."""
    return (
        model or embedding.model,
        embedding.backend,
        embedding.device,
        embedding.threads,
        index.derived_models_dir,
    )


class ModelRegistry:
    """Loaded models by `model_key`; each loads once however many sets ask for it."""

    def __init__(self, load: Callable[[EmbeddingSettings, IndexSettings, str | None], Embedder] | None = None) -> None:
        self._load = load or (lambda emb, index, model: embedder_from_settings(emb, index, model=model))
        self._models: weakref.WeakValueDictionary[ModelKey, Embedder] = weakref.WeakValueDictionary()
        self._locks: dict[ModelKey, threading.Lock] = {}
        self._guard = threading.Lock()
        self.loads = 0  # models loaded by this registry (what sharing saves is visible in tests)

    def get(self, embedding: EmbeddingSettings, index: IndexSettings, model: str | None = None) -> Embedder:
        """The model the settings (and `model`, a name or path overriding theirs) describe:
        the one already loaded, else loaded now (blocking; once, whoever else asks meanwhile)."""
        key = model_key(embedding, index, model)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            found = self._models.get(key)
            if found is not None:
                return found
            loaded = self._load(embedding, index, model)
            self._models[key] = loaded
            self.loads += 1
            return loaded

    def __len__(self) -> int:
        """Models loaded and still served by some set."""
        return len(self._models)
