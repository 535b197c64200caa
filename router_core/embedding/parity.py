"""Exactness is checked, not assumed: reference vectors recorded with an index version.

When a version is built, a fixed set of sentences is embedded and the vectors are stored in its
manifest. Before a process serves (or extends) that version with a model it loaded, it embeds
the same sentences, as one padded batch and one by one, and compares: every cosine must reach
`MIN_COSINE`, or that backend is refused for the version with a message naming the backend,
the worst sentence and its cosine. The sentences are embedded as documents (route examples);
a model with a query side (e5's prefix) runs the same engine on it.

Backends that change the arithmetic on purpose (int8 weights, bf16) are approximate: an index
they built is served only by the same backend, and an index an exact backend built is never
served by them, whatever the cosines (bf16 passes 0.9999 on some sentences and still changes
routing decisions).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from router_core.embedding.protocol import Embedder, Vectors
from router_core.errors import IndexIncompatible

MIN_COSINE = 0.9999
APPROXIMATE_BACKENDS = frozenset({"onnx-int8", "openvino-bf16"})
_LONG = " ".join(
    f"Sentence {i}: the quarterly invoice for the enterprise plan was charged twice, so please "
    "explain the refund policy, the proration rules and how seats are counted."
    for i in range(1, 25)
)
# Short and long (past every model's max_seq_length), several scripts, markup, digits, emoji:
# batched together they also exercise padding and truncation.
REFERENCE_TEXTS = (
    "How do I use async with Rust?",
    "What is 15% of 200?",
    "tell me a joke",
    "Can you compare the pricing of the team and enterprise plans for 250 seats, billed yearly?",
    "Wie viel kostet das Abo pro Monat?  Und gibt es Rabatt für Studenten?",
    "请帮我把这段代码从 Python 翻译成 Go。",
    "Ошибка компиляции: borrowed value does not live long enough 🦀",
    "<b>urgent</b>\tplease reset my password\n\nthanks!!!",
    "x" * 3 + " 1234567890 " * 20,
    _LONG,
)


class ParityFailed(IndexIncompatible):
    """The loaded backend does not reproduce the vectors an index version was built with."""


@dataclass(frozen=True)
class Reference:
    """Reference sentences and their vectors, as recorded with an index version."""

    model_id: str
    backend: str
    texts: tuple[str, ...]
    vectors: Vectors

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (vectors as base64 of little-endian float32)."""
        return {
            "model_id": self.model_id,
            "backend": self.backend,
            "texts": list(self.texts),
            "dimension": int(self.vectors.shape[1]),
            "min_cosine": MIN_COSINE,
            "vectors_f32le_b64": base64.b64encode(self.vectors.astype("<f4").tobytes()).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        """Inverse of `to_dict`; IndexIncompatible when the record is damaged."""
        try:
            texts = tuple(str(t) for t in data["texts"])
            raw = np.frombuffer(base64.b64decode(data["vectors_f32le_b64"]), dtype="<f4")
            vectors = raw.reshape(len(texts), int(data["dimension"])).astype(np.float32)
            return cls(str(data["model_id"]), str(data["backend"]), texts, vectors)
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexIncompatible(f"the recorded reference vectors are unreadable: {exc!r}") from exc


@dataclass(frozen=True)
class ParityResult:
    """How a loaded backend compares with a version's reference vectors."""

    ok: bool
    backend: str
    reference_backend: str
    min_cosine: float | None
    worst_text: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """For status pages."""
        return {
            "ok": self.ok,
            "backend": self.backend,
            "reference_backend": self.reference_backend,
            "min_cosine": None if self.min_cosine is None else round(self.min_cosine, 7),
            "required": MIN_COSINE,
            **({"reason": self.reason} if self.reason else {}),
        }


def record_reference(embedder: Embedder) -> Reference:
    """Embed the reference sentences with `embedder`, to record with a new version."""
    vectors = embedder.encode_documents(list(REFERENCE_TEXTS), batch_size=len(REFERENCE_TEXTS))
    return Reference(embedder.model_id, embedder.backend, REFERENCE_TEXTS, np.asarray(vectors, dtype=np.float32))


def approximate_mismatch(backend: str, reference_backend: str) -> str:
    """Why vectors of `backend` may not stand in for those of `reference_backend` whatever the
    cosines ("" when they may): either is approximate and they differ."""
    approximate = {backend, reference_backend} & APPROXIMATE_BACKENDS
    if not approximate or backend == reference_backend:
        return ""
    return (
        f"{' and '.join(sorted(approximate))} computes approximate vectors that change routing decisions: "
        "when either side is approximate, an index is served only by the backend that built it"
    )


def _cosines(a: Vectors, b: Vectors) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray((a * b).sum(axis=1) / np.clip(norms, 1e-12, None), dtype=np.float64)


def check_parity(reference: Reference, embedder: Embedder) -> ParityResult:
    """Compare `embedder` with the reference: the sentences as one batch and one by one."""
    base = {"backend": embedder.backend, "reference_backend": reference.backend}
    if reference.model_id != embedder.model_id or reference.vectors.shape[1] != embedder.dimension:
        reason = f"reference vectors are of model {reference.model_id!r}, not {embedder.model_id!r}"
        return ParityResult(False, min_cosine=None, reason=reason, **base)
    texts = list(reference.texts)
    batch = embedder.encode_documents(texts, batch_size=len(texts))
    single = np.vstack([embedder.encode_documents([t]) for t in texts])
    cosines = np.minimum(_cosines(batch, reference.vectors), _cosines(single, reference.vectors))
    worst = int(np.argmin(cosines))
    low = float(cosines[worst])
    ok = low >= MIN_COSINE
    reason = "" if ok else f"cosine {low:.6f} < {MIN_COSINE} on {texts[worst][:60]!r}"
    mismatch = approximate_mismatch(embedder.backend, reference.backend)
    if ok and mismatch:
        ok, reason = False, f"cosines hold (min {low:.6f}) but {mismatch}"
    return ParityResult(ok, min_cosine=low, worst_text=texts[worst], reason=reason, **base)


def require_parity(reference: Reference, embedder: Embedder, version: str) -> ParityResult:
    """`check_parity`, raising ParityFailed with a message an operator can act on."""
    result = check_parity(reference, embedder)
    if not result.ok:
        raise ParityFailed(
            f"embedding backend {embedder.backend!r} is refused for index version {version}: it does not "
            f"reproduce the vectors the version was built with (backend {reference.backend!r}): {result.reason}. "
            f"Serve with backend {reference.backend!r} (ROUTER_EMBEDDING__BACKEND), or re-index with "
            f"{embedder.backend!r}."
        )
    return result
