"""The shared loop of the exported-graph backends: tokenise, run the transformer graph, pool.

A query (or a small micro-batch) runs on the caller's thread with the runtime's intra-op
threads: one, for a small model, so a lone query never waits on a second thread. A small encode
long enough to gain from a second core (a chat's window never seen before: ~11 texts, ~200
tokens) is cut by token counts and shared with long-lived helper threads
(`router_core.embedding.shares`). Larger work is spread over `workers` threads, each running
whole batches: an index build's many batches, and a busy service's micro-batch of 16 or more
queries, cut in two. On a small model two single-threaded passes side by side use two cores far
better than one pass split over two threads (the matrices of a short text are too small to
split).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from router_core.embedding.layout import ModelLayout, load_tokenizer, pool
from router_core.embedding.protocol import Vectors
from router_core.embedding.shares import Share, shares, split_extra

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

Feeds = dict[str, npt.NDArray[np.int64]]


class GraphEmbedder:
    """Base of the ONNX Runtime and OpenVINO embedders (the `Embedder` protocol).

    Subclasses set `backend` and `input_names` and implement `_run(feeds)`, which must be safe to
    call from `workers` threads at once, returning last_hidden_state [batch, seq, hidden].
    """

    backend = ""
    input_names: tuple[str, ...] = ()
    # A batch of at least split_min x workers texts (a busy service's micro-batch) is cut into
    # one batch per worker: measured at 32 clients, 1.5x the requests per second of one pass.
    split_min = 8

    def __init__(self, layout: ModelLayout, model_id: str, source: str, *, threads: int, workers: int) -> None:
        self.layout = layout
        self.model_id = model_id
        self.source = source
        self.dimension = layout.dimension
        self.threads = threads
        self.workers = max(1, workers)
        self._tokenizer = load_tokenizer(layout)
        self._helpers: ThreadPoolExecutor | None = None  # small encodes' other shares (`shares`)
        self._helpers_lock = threading.Lock()

    def _run(self, feeds: Feeds) -> npt.NDArray[Any]:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _encode_batch(self, texts: Sequence[str]) -> Vectors:
        return self._encode_tokens([self._tokenizer.encode(t) for t in texts])

    def _encode_tokens(self, encoded: Sequence[Encoding]) -> Vectors:
        feeds = pad_encodings(self._tokenizer, encoded, with_types="token_type_ids" in self.input_names)
        return pool(self._run(feeds), feeds["attention_mask"], self.layout.pooling)

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Texts to route: the same vectors as examples (these models embed both alike)."""
        return self._encode_texts(texts, batch_size=batch_size, progress=progress)

    def encode_documents(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Stored examples."""
        return self._encode_texts(texts, batch_size=batch_size, progress=progress)

    def _encode_texts(self, texts: Sequence[str], *, batch_size: int, progress: bool) -> Vectors:
        """Embed `texts`; rows are unit-normalised float32 vectors, in order. Fewer than
        split_min x workers texts: `_encode_small`. More: like sentence-transformers, batches are
        cut after sorting by length (less padding); a text much shorter than the longest of its
        batch starts a new one, and the batches run side by side on the workers."""
        texts = list(texts)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        if self.workers > 1 and len(texts) < self.split_min * self.workers and not progress:
            return self._encode_small(texts, out)
        lengths = [len(t) for t in texts]
        order = np.argsort([-n for n in lengths], kind="stable")
        size = max(1, batch_size)
        if self.split_min and self.workers > 1 and len(texts) >= self.split_min * self.workers:
            size = min(size, -(-len(texts) // self.workers))  # one batch per worker
        batches = cut_batches(order, lengths, size)

        def run(rows: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.intp], Vectors]:
            return rows, self._encode_batch([texts[i] for i in rows])

        bar = _progress(len(texts)) if progress else None
        if len(batches) == 1 or self.workers == 1:
            self._collect(map(run, batches), out, bar)
        else:  # a pool per call: a query's batches never queue behind another caller's bulk work
            with ThreadPoolExecutor(self.workers, thread_name_prefix=f"{self.backend}-bulk") as pool_:
                self._collect(pool_.map(run, batches), out, bar)
        if bar is not None:
            bar.close()
        return out

    def _encode_small(self, texts: list[str], out: Vectors) -> Vectors:
        """A small encode (a chat's window, a light micro-batch): tokenised once, cut into passes
        and shared between the workers by token counts (`shares`, more freely within
        `spare_cores`); the first share runs on the caller's thread, the others on long-lived
        helper threads."""
        encoded = [self._tokenizer.encode(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i].ids))
        work = shares([len(encoded[i].ids) for i in order], self.workers, split_extra())

        def run(share: Share) -> None:
            for start, end in share:
                rows = order[start:end]
                out[rows] = self._encode_tokens([encoded[i] for i in rows])

        others = [self._helper_pool().submit(run, share) for share in work[1:]]
        try:
            run(work[0])
        finally:
            for done in others:
                done.result()
        return out

    def _helper_pool(self) -> ThreadPoolExecutor:
        with self._helpers_lock:
            if self._helpers is None:
                self._helpers = ThreadPoolExecutor(self.workers - 1, thread_name_prefix=f"{self.backend}-share")
            return self._helpers

    @staticmethod
    def _collect(done: Any, out: Vectors, bar: Any) -> None:
        for rows, vectors in done:
            out[rows] = vectors
            if bar is not None:
                bar.update(len(rows))


def pad_encodings(tokenizer: Tokenizer, encoded: Sequence[Encoding], *, with_types: bool) -> Feeds:
    """Token ids, attention mask (and token types) of texts tokenised one by one, padded to the
    longest.

    Each text is tokenised on its own and padded here, as the tokenizer's batch call would
    (the same pad id and type), so the tokenizer never starts its own thread pool: that pool
    competes with the runtime's threads for tiny batches, and switching it off would mean
    writing TOKENIZERS_PARALLELISM into the process environment.
    """
    pad = tokenizer.padding or {}
    pad_id, pad_type = int(pad.get("pad_id", 0)), int(pad.get("pad_type_id", 0))
    longest = max((len(e.ids) for e in encoded), default=0)
    ids = np.full((len(encoded), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(encoded), longest), dtype=np.int64)
    types = np.full((len(encoded), longest), pad_type, dtype=np.int64)
    for row, e in enumerate(encoded):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = e.attention_mask
        types[row, : len(e.ids)] = e.type_ids
    feeds: Feeds = {"input_ids": ids, "attention_mask": mask}
    if with_types:
        feeds["token_type_ids"] = types
    return feeds


# A text shorter than this share of its batch's longest starts a new batch, once the longest
# is long enough for padding to cost more than a second forward pass (measured on MiniLM, one
# thread: a 300-character chat context batched with two short messages took 49 ms, the three
# apart 30 ms, the context beside the two short ones on two workers 17 ms).
PAD_SHARE = 0.5
PAD_MIN_CHARS = 64
# A batch holds at most this many characters counted as padded (texts x its longest): a big
# batch of long texts computes attention over more than the caches hold. Measured on MiniLM,
# ONNX Runtime, two workers: 6,000 CLINC150 queries (~40 characters) encoded in 6.4 s in
# batches of 16-32 against 7.1 s in batches of 64; 1,500 texts of ~250 characters in 7.5 s in
# batches of 4-8 against 11.5 s in batches of 64.
MAX_BATCH_CHARS = 1280


def cut_batches(order: npt.NDArray[np.intp], lengths: Sequence[int], size: int) -> list[npt.NDArray[np.intp]]:
    """Rows in `order` (longest first) cut into batches of at most `size` and at most
    MAX_BATCH_CHARS padded characters, a new batch also where a text is under PAD_SHARE of its
    batch's longest (when that is PAD_MIN_CHARS or more)."""
    batches: list[npt.NDArray[np.intp]] = []
    start = 0
    for i in range(1, len(order) + 1):
        if i == len(order):
            batches.append(order[start:i])
            break
        longest = lengths[order[start]]
        full = i - start >= size or (i - start + 1) * longest > MAX_BATCH_CHARS
        padded = longest >= PAD_MIN_CHARS and lengths[order[i]] < PAD_SHARE * longest
        if full or padded:
            batches.append(order[start:i])
            start = i
    return batches


def _progress(total: int) -> Any:
    from tqdm.auto import tqdm  # installed with transformers; only for interactive runs

    return tqdm(total=total, desc="embedding", unit="text")
