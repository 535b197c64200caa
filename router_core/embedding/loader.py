"""Load an embedding model with the backend the settings name."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal

from router_core.embedding.models import DEFAULT_MODEL
from router_core.embedding.protocol import Embedder
from router_core.errors import ModelUnavailable

Backend = Literal["torch"]
BACKENDS: dict[str, Callable[[str, str], Embedder]] = {}


def _torch(name_or_path: str, device: str) -> Embedder:
    from router_core.embedding.torch_backend import TorchEmbedder  # each backend's runtime loads only when chosen

    return TorchEmbedder.load(name_or_path, device)


BACKENDS["torch"] = _torch


def load_embedder(name_or_path: str = DEFAULT_MODEL, *, backend: str = "torch", device: str = "cpu") -> Embedder:
    """Load a model offline with `backend` and run one warm-up pass, so the first query served
    is not the slow one; raise ModelUnavailable naming the model when either fails."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        make = BACKENDS[backend]
    except KeyError:
        raise ModelUnavailable(f"unknown embedding backend {backend!r}; known: {', '.join(sorted(BACKENDS))}") from None
    embedder = make(name_or_path, device)
    try:
        embedder.encode(["warm-up"])
    except Exception as exc:  # loads but cannot encode (a broken checkpoint, say)
        raise ModelUnavailable(f"embedding model {name_or_path!r} cannot encode: {exc}") from exc
    return embedder
