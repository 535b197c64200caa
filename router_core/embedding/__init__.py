"""Sentence embeddings behind one small protocol; each backend is a module of its own."""

from router_core.embedding.loader import BACKENDS, load_embedder
from router_core.embedding.models import DEFAULT_MODEL, MODEL_ID_FILE, resolve_model
from router_core.embedding.packaged import Languages, languages_of
from router_core.embedding.protocol import Embedder, Vectors

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "MODEL_ID_FILE",
    "Embedder",
    "Languages",
    "Vectors",
    "languages_of",
    "load_embedder",
    "resolve_model",
]
