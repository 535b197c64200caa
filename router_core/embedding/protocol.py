"""What the router needs from an embedding model, whatever runs it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """A loaded sentence embedding model.

    `model_id` and `dimension` are recorded in every index version (a version is only served
    with the model it was built with); `source` is how to load the model again (a name, or an
    absolute path); `backend` names what runs it (for status pages and the manifest).

    A query and a stored example are two sides: some models embed them differently
    (multilingual-e5 prefixes "query: " and "passage: "). Route examples, and everything stored
    or compared with stored examples as their equal (hygiene, fine-tuning, the parity
    reference), are documents; what is routed (a request, a conversation's messages, an
    evaluation's queries) are queries. Symmetric models give the same vectors for both.
    """

    model_id: str
    dimension: int
    source: str
    backend: str

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Embed texts to be routed; rows are unit-normalised float32 vectors, in order."""
        ...

    def encode_documents(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Embed stored examples; rows are unit-normalised float32 vectors, in order."""
        ...
