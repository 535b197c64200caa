"""A sentence-transformers model directory read without torch: its pipeline, tokenizer and pooling.

The runtimes other than torch run only the transformer (an exported graph); everything around it
(tokenising, mean pooling, normalising) is done here exactly as sentence-transformers does it, so
the vectors match. Only the layouts the router's models use are accepted: Transformer, then
Pooling (mean or CLS), optionally Normalize.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from router_core.embedding.protocol import Vectors
from router_core.errors import ModelUnavailable

if TYPE_CHECKING:
    from tokenizers import Tokenizer

Pooling = Literal["mean", "cls"]
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class ModelLayout:
    """What the files of a sentence-transformers directory say about running it."""

    directory: Path
    max_seq_length: int
    pooling: Pooling
    dimension: int
    hidden_size: int


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"{path}: unreadable ({exc})") from exc


def read_layout(model_dir: str | Path) -> ModelLayout:
    """The layout of a model directory; ModelUnavailable naming the file when it is not one the
    exported runtimes can reproduce (extra modules such as Dense, max or sqrt-length pooling)."""
    directory = Path(model_dir)
    modules = _json(directory / "modules.json")
    types = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if not types or types[0] != "Transformer" or "Pooling" not in types:
        raise ModelUnavailable(f"{directory}/modules.json: {types} is not Transformer + Pooling [+ Normalize]")
    extra = sorted(set(types) - {"Transformer", "Pooling", "Normalize"})
    if extra:
        raise ModelUnavailable(f"{directory}/modules.json: modules {extra} are not supported outside torch")
    pooling_dir = next(m["path"] for m in modules if str(m.get("type", "")).endswith("Pooling"))
    pcfg = _json(directory / pooling_dir / "config.json")
    pooling = _pooling_mode(pcfg)
    if pooling is None:
        raise ModelUnavailable(f"{directory}/{pooling_dir}/config.json: pooling {pcfg} is not supported outside torch")
    dimension = pcfg.get("word_embedding_dimension", pcfg.get("embedding_dimension"))
    sbert = directory / "sentence_bert_config.json"
    max_len = _json(sbert).get("max_seq_length") if sbert.is_file() else None
    if not max_len:  # sentence-transformers falls back to the tokenizer's limit
        max_len = _json(directory / "tokenizer_config.json").get("model_max_length", 512)
    config = _json(directory / "config.json")
    return ModelLayout(
        directory=directory,
        max_seq_length=int(max_len),
        pooling=pooling,
        dimension=int(dimension),
        hidden_size=int(config.get("hidden_size", dimension)),
    )


def _pooling_mode(pcfg: dict[str, Any]) -> Pooling | None:
    """Mean or CLS pooling from either config format: sentence-transformers 6 writes
    `pooling_mode: "mean"`, earlier releases one `pooling_mode_<mode>_tokens` flag per mode."""
    mode = pcfg.get("pooling_mode")
    if mode is not None:
        return mode if mode in ("mean", "cls") else None
    flags = {k for k, v in pcfg.items() if k.startswith("pooling_mode_") and v}
    if flags == {"pooling_mode_mean_tokens"}:
        return "mean"
    if flags == {"pooling_mode_cls_token"}:
        return "cls"
    return None


def load_tokenizer(layout: ModelLayout) -> Tokenizer:
    """The fast tokenizer, truncating at the model's max_seq_length and padding to the longest
    text of each batch. The shipped tokenizer.json files say truncate at 128 and pad to a fixed
    128: both are overridden, as sentence-transformers does."""
    from tokenizers import Tokenizer

    path = layout.directory / "tokenizer.json"
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust binding raises a plain Exception for a bad file
        raise ModelUnavailable(f"{path}: cannot load the tokenizer ({exc})") from exc
    pad = tok.padding or {}
    tok.enable_truncation(max_length=layout.max_seq_length)
    tok.enable_padding(
        pad_id=pad.get("pad_id", 0),
        pad_token=pad.get("pad_token", "[PAD]"),
        pad_type_id=pad.get("pad_type_id", 0),
    )
    return tok


def pool(hidden: npt.NDArray[Any], mask: npt.NDArray[np.int64], pooling: Pooling) -> Vectors:
    """Pool token states into one unit vector per text (torch's normalize: p=2, eps=1e-12)."""
    states = hidden.astype(np.float32, copy=False)
    if pooling == "cls":
        out = states[:, 0]
    else:
        weights = mask.astype(np.float32)[:, :, None]
        out = (states * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    out = out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
    return np.ascontiguousarray(out, dtype=np.float32)
