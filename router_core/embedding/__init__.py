"""Sentence embeddings behind one small protocol; each backend is a module of its own."""

from router_core.embedding.loader import BACKENDS, load_embedder, resolve_backend
from router_core.embedding.models import DEFAULT_MODEL, MODEL_ID_FILE, portable_source, resolve_model
from router_core.embedding.packaged import PACKAGED_MODELS, Languages, installed, languages_of
from router_core.embedding.parity import ParityResult, Reference, require_parity
from router_core.embedding.protocol import Embedder, Vectors
from router_core.embedding.quality_model import MPNET_NAME, ensure_quality_model
from router_core.embedding.shares import spare_cores
from router_core.embedding.threads import usable_cores

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "MODEL_ID_FILE",
    "MPNET_NAME",
    "PACKAGED_MODELS",
    "Embedder",
    "Languages",
    "ParityResult",
    "Reference",
    "Vectors",
    "ensure_quality_model",
    "installed",
    "languages_of",
    "load_embedder",
    "portable_source",
    "require_parity",
    "resolve_backend",
    "resolve_model",
    "spare_cores",
    "usable_cores",
]
