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
    """

    model_id: str
    dimension: int
    source: str
    backend: str

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Embed `texts` in batches; rows are unit-normalised float32 vectors, in order."""
        ...
