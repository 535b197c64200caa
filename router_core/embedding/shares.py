"""How a small encode (a chat's window of messages, a light micro-batch) is cut into forward
passes and shared between the cores, from the texts' token counts.

On a small model on the CPU a forward pass costs a fixed part plus a part per padded token
(measured on MiniLM, ONNX Runtime, one thread: 1.5 ms + ~0.12 ms per token of the batch's
rows x its longest row, whatever the shape: 16 x 8, 8 x 16, 4 x 32 and 1 x 128 tokens all took
16.5-17.4 ms). So the cost of a batch is `PASS_TOKENS + rows x longest` in token units, and
for texts sorted longest first:

- `passes` cuts them into the batches of least total cost (every cut is between neighbours in
  that order: a batch of similar lengths pads least), by dynamic programming;
- `shares` splits them into one contiguous run per worker with the smallest largest share
  (each run cut by `passes`), and keeps them together when splitting gains too little or
  adds passes (work) the whole would not need.

A chat's window never seen before (11 texts, ~200 tokens on the SGD set) took 22.5 ms cut by
characters and run batch by batch on a thread pool started per call, 17.8 ms shared this way
with a long-lived helper thread (p50 of 150 conversations, alternating in one process).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

PASS_TOKENS = 12
"""The fixed cost of one forward pass, in padded tokens (1.5 ms / 0.12 ms on MiniLM)."""

SPLIT_GAIN = 0.75
"""Split across workers only when the largest share costs at most this part of the whole."""

SPLIT_EXTRA = 0.1
"""... and the shares cost at most this much more than the whole in one share: the extra passes
are work a busy service's other requests wait for (four short queries are not split: 20% more)."""

LONE_SPLIT_EXTRA = 0.5
"""... or this much more for an encode its caller marked as the only work waiting
(`spare_cores`): a live chat's next turn (its last agent message and the new user message, two
short texts, ~25% more work in two passes) then uses the second core. Measured over HTTP, one
service process, 200 SGD conversations (`python -m bench.conversation_latency --baseline-root`,
the code before in the same command): the next turn's p50 7.77 against 8.28 ms."""

_hint = threading.local()


@contextmanager
def spare_cores() -> Iterator[None]:
    """Within the block, small encodes on this thread may cost up to LONE_SPLIT_EXTRA more work
    to use every worker: the caller says nothing else waits for them (a service pass for one
    lone request)."""
    before = getattr(_hint, "spare", False)
    _hint.spare = True
    try:
        yield
    finally:
        _hint.spare = before


def split_extra() -> float:
    """The extra work a split may cost on this thread now (SPLIT_EXTRA, or LONE_SPLIT_EXTRA
    within `spare_cores`)."""
    return LONE_SPLIT_EXTRA if getattr(_hint, "spare", False) else SPLIT_EXTRA


Share = list[tuple[int, int]]
"""A worker's batches: [start, end) ranges of the texts sorted longest first."""


def _least(lengths: Sequence[int], start: int) -> tuple[list[int], list[int]]:
    """For every end after `start`: the least cost of texts start..end and where its last batch
    starts (dynamic programming over the texts, longest first)."""
    n = len(lengths) - start
    best = [0] + [0] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        best[j], cut[j] = min((best[i] + PASS_TOKENS + (j - i) * lengths[start + i], i) for i in range(j))
    return best, cut


def passes(lengths: Sequence[int], start: int, end: int) -> Share:
    """The batches of least cost for texts `start`..`end` (token counts, longest first)."""
    _, cut = _least(lengths[:end], start)
    batches: Share = []
    j = end - start
    while j > 0:
        batches.append((start + cut[j], start + j))
        j = cut[j]
    return batches[::-1]


def shares(lengths: Sequence[int], workers: int, extra: float = SPLIT_EXTRA) -> list[Share]:
    """The batches of each worker (the first runs on the caller) for texts of these token
    counts, sorted longest first: one share unless splitting brings the largest share under
    SPLIT_GAIN of the whole for at most `extra` (a share of the whole) more work."""
    n = len(lengths)
    if workers < 2 or n < 2:
        return [passes(lengths, 0, n)]
    best = [_least(lengths, i)[0] for i in range(n)]  # best[i][j - i]: least cost of texts i..j
    # largest[w][i]: the smallest largest share of texts i.. over w workers, and where it cuts
    workers = min(workers, n)
    largest = [[(best[i][n - i], n) for i in range(n)]]
    for _ in range(2, workers + 1):
        fewer = largest[-1]
        largest.append(
            [min(((max(best[i][s - i], fewer[s][0]), s) for s in range(i + 1, n)), default=fewer[i]) for i in range(n)]
        )
    bounds: list[tuple[int, int]] = []
    i = 0
    for w in range(workers, 0, -1):
        if i >= n:
            break
        end = largest[w - 1][i][1]
        bounds.append((i, end))
        i = end
    whole = best[0][n]
    added = sum(best[a][b - a] for a, b in bounds) - whole
    if largest[-1][0][0] > SPLIT_GAIN * whole or added > extra * whole:
        return [passes(lengths, 0, n)]
    return [passes(lengths, a, b) for a, b in bounds]
