"""The embedding model the settings describe, loaded with their backend, threads and cache."""

from __future__ import annotations

from router_core.embedding import Embedder, load_embedder
from router_core.settings import EmbeddingSettings, IndexSettings


def embedder_from_settings(embedding: EmbeddingSettings, index: IndexSettings, *, model: str | None = None) -> Embedder:
    """Load `model` (default: the configured one) as the embedding settings say, caching any
    conversion under the index's data directory."""
    return load_embedder(
        model or embedding.model,
        backend=embedding.backend,
        device=embedding.device,
        threads=embedding.threads,
        cache_dir=index.derived_models_dir,
    )
