"""Queries derived from texts already embedded: a weighted mean of their vectors, renormalised.

A conversation's context (a user message and the messages just before it) is searched as the
mix of its messages' vectors instead of being embedded again as one long text: the model
reads each message once, so a conversation costs one embedding per message of its window and
a context costs a few additions (measured against the concatenated text on the SGD and
MultiWOZ sets, BENCHMARKS.md). Pure: `mix_vectors` is the one way every caller (the service's
routing stage, `Router`, calibration) turns mixes into the vectors it searches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Mix:
    """A query searched as the weighted mean of `texts`' vectors (renormalised); hashable, and
    never equal to a text, so caches can key texts and mixes side by side."""

    texts: tuple[str, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.texts or len(self.texts) != len(self.weights):
            raise ValueError("a mix needs one weight per text, and at least one text")


def mix_vectors(mixes: Sequence[Mix], vectors: Mapping[str, Vector], dimension: int) -> npt.NDArray[np.float32]:
    """(len(mixes), dimension): each mix's vector from the vectors of its texts (unit rows)."""
    out = np.zeros((len(mixes), dimension), dtype=np.float32)
    for row, mix in enumerate(mixes):
        total = np.zeros(dimension, dtype=np.float64)
        for text, weight in zip(mix.texts, mix.weights, strict=True):
            total += weight * np.asarray(vectors[text], dtype=np.float64)
        norm = float(np.linalg.norm(total))
        out[row] = total / norm if norm > 0 else total
    return out
