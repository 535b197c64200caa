"""The sentence-transformers (PyTorch) backend."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from router_core.embedding.models import portable_source, resolve_model
from router_core.embedding.protocol import Vectors
from router_core.errors import ModelUnavailable

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class TorchEmbedder:
    """A sentence-transformers model on PyTorch (the `Embedder` protocol)."""

    backend = "torch"
    threads = 0  # torch's intra-op threads once loaded (0: not known)

    def __init__(self, model: SentenceTransformer, model_id: str, source: str = "") -> None:
        self._model = model
        self._lock = threading.Lock()
        self.model_id = model_id
        self.source = source or model_id
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise ModelUnavailable(f"model {model_id!r} does not report an embedding dimension")
        self.dimension = int(dim)

    @classmethod
    def load(cls, name_or_path: str, device: str = "cpu", *, threads: int = 0) -> TorchEmbedder:
        """Load the model offline; raise ModelUnavailable naming the model when that fails.

        `threads` > 0 sets torch's intra-op threads, for the whole process (torch has one pool).
        """
        location, model_id = resolve_model(name_or_path)
        import torch
        from sentence_transformers import SentenceTransformer  # heavy: imported only when a model loads

        if threads > 0:
            torch.set_num_threads(threads)

        try:
            # local_files_only: never reach for a model hub (passed here, not through the environment)
            model = SentenceTransformer(location, device=device, local_files_only=True)
        except Exception as exc:  # the library raises many unrelated types for a bad model
            raise ModelUnavailable(f"cannot load embedding model {name_or_path!r} (from {location}): {exc}") from exc
        embedder = cls(model, model_id, portable_source(name_or_path))
        embedder.threads = torch.get_num_threads()
        return embedder

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Texts to route: the same vectors as examples (the router's models embed both alike)."""
        return self._encode(texts, batch_size=batch_size, progress=progress)

    def encode_documents(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Stored examples."""
        return self._encode(texts, batch_size=batch_size, progress=progress)

    def _encode(self, texts: Sequence[str], *, batch_size: int, progress: bool) -> Vectors:
        """Embed `texts` in batches; rows are unit-normalised float32 vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # one forward pass at a time: torch already uses every core it is given
            vectors = self._model.encode(
                list(texts),
                batch_size=batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.asarray(vectors, dtype=np.float32)
