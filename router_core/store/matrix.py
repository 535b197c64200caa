"""Exact cosine search over one version's vectors held in memory: numpy's matrix product.

The embedded store's default scan (`ROUTER_INDEX__SCAN=matrix`). Qdrant Edge's exact search
scores every stored vector too, but holds the interpreter lock while it scans: in a serving
process the event loop stops for every search (`bench.gil`: a Python loop beside it keeps 38%
of its speed). The matrix product runs in the BLAS library with the lock released, and scores
a micro-batch of queries in one pass over the vectors (`python -m bench.gil`; BENCHMARKS.md
"Serving close to the machine's limit"). The neighbours are the engine's: the same cosine over
the same unit vectors, most similar first, ties in stored order (which of several examples tied
at the k-th place is kept is arbitrary; `tests/test_store_contract.py` checks the neighbours
against the engine's search).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from router_core.embedding import Vectors
from router_core.neighbours import Neighbour

# Stored vectors whose norms are within this of 1 are searched as they are.
_UNIT = 1e-4
# Vectors up to this size are copied into the process (faster scans); larger ones stay mapped.
PRIVATE_BYTES = 64 * 1024 * 1024
# Scores computed at once: queries x stored vectors, at most this many (16 MB of float32).
_MAX_SCORES = 4 * 1024 * 1024


class MatrixSearcher:
    """The `Searcher` of an embedded version: its unit vectors as one float32 matrix."""

    def __init__(
        self,
        vectors: Vectors,
        routes: Sequence[str],
        texts: Sequence[str],
        *,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or len(matrix) != len(routes) or len(routes) != len(texts):
            raise ValueError("one route and one text per stored vector")
        if not np.isfinite(matrix).all():
            raise ValueError("stored vectors hold values that are not finite")
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if not np.allclose(norms, 1.0, atol=_UNIT):
            # cosine, as the engine's Distance.Cosine: stored vectors are normalised (a zero
            # vector scores 0 against everything); the embedders store unit vectors already
            matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
        elif matrix.nbytes <= PRIVATE_BYTES:
            # a private copy scans faster than the mapped file (16 queries over CLINC150's 15,000
            # vectors: 2.9-3.0 ms against 3.7-4.0 ms, measured alternately in one process); a
            # larger index stays mapped, one copy in the page cache for every worker process
            matrix = np.array(matrix)
        self._matrix = matrix
        self._routes = tuple(routes)
        self._texts = tuple(texts)
        self._on_close = on_close

    @property
    def size(self) -> int:
        """Stored vectors."""
        return len(self._texts)

    def search(self, vectors: Vectors, k: int) -> list[list[Neighbour]]:
        """The k most similar stored examples of each row, most similar first."""
        queries = np.asarray(vectors, dtype=np.float32)
        if len(queries) == 0:
            return []
        if queries.ndim != 2 or queries.shape[1] != self._matrix.shape[1]:
            raise ValueError(f"query vectors of dimension {queries.shape[-1]}, the index holds {self._matrix.shape[1]}")
        width = min(max(0, k), self.size)
        if width == 0:
            return [[] for _ in range(len(queries))]
        norms = np.linalg.norm(queries, axis=1, keepdims=True)
        queries = np.divide(queries, norms, out=np.zeros_like(queries), where=norms > 0)
        out: list[list[Neighbour]] = []
        step = max(1, _MAX_SCORES // max(1, self.size))
        for start in range(0, len(queries), step):
            out.extend(self._nearest(queries[start : start + step], width))
        return out

    def _nearest(self, queries: npt.NDArray[np.float32], width: int) -> list[list[Neighbour]]:
        scores = queries @ self._matrix.T  # (B, N), the interpreter lock released
        if width < self.size:
            rows = np.argpartition(-scores, width - 1, axis=1)[:, :width]
            rows.sort(axis=1)  # stored order first, so that ties keep it through the stable sort below
        else:
            rows = np.broadcast_to(np.arange(self.size), scores.shape).copy()
        top = np.take_along_axis(scores, rows, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        rows = np.take_along_axis(rows, order, axis=1)
        top = np.take_along_axis(top, order, axis=1)
        routes, texts = self._routes, self._texts
        return [
            [Neighbour(texts[i], routes[i], float(s)) for i, s in zip(r.tolist(), t.tolist(), strict=True)]
            for r, t in zip(rows, top, strict=True)
        ]

    def close(self) -> None:
        """Drop the vectors and release the version."""
        self._matrix = np.zeros((0, self._matrix.shape[1]), dtype=np.float32)  # unmaps a mapped file
        self._routes, self._texts = (), ()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()
