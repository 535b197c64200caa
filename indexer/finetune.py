"""Fine-tune the embedding model on the route examples (an explicit step, never part of reindex).

Contrastive training with sentence-transformers' MultipleNegativesRankingLoss: each example is
an anchor, another example of the same route its positive, and the other pairs of the batch
are its negatives. A batch never holds two pairs of one route, so no negative is secretly a
positive. The result is a versioned model directory whose `router-model.json` gives it a stable
id (`<base>-ft-<hash of base, examples and settings>`); an index built with it records that id,
and the service loads the model the live index records (ROUTER_FOLLOW_INDEX_MODEL, the default),
so a re-index with the tuned model brings it into service.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from indexer.finetune_config import FinetuneConfig
from router_core import ModelUnavailable, RouteTable
from router_core.embedding import MODEL_ID_FILE, resolve_model
from router_core.manifest import example_points


@dataclass(frozen=True)
class FinetuneResult:
    """What fine-tuning produced."""

    model_id: str
    base_model: str
    path: Path
    examples: int
    pairs: int
    steps: int
    seconds: float
    created: bool  # False when a model with this id already existed and was kept


Pair = tuple[str, str, str]  # anchor, positive, route


def model_id_for(base_model_id: str, table: RouteTable, config: FinetuneConfig) -> str:
    """`<base name>-ft-<8 hex>`: equal for the same base model, examples and settings."""
    ids = sorted(p.id for p in example_points(table))
    blob = json.dumps({"base": base_model_id, "points": ids, "config": asdict(config)}, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:8]
    return f"{base_model_id.rstrip('/').rsplit('/', 1)[-1]}-ft-{digest}"


def training_pairs(table: RouteTable, rng: np.random.Generator) -> list[Pair]:
    """Each example of a route with two or more examples, paired with another one of it."""
    pairs: list[Pair] = []
    for route in table.routes:
        examples = list(route.examples)
        if len(examples) < 2:
            continue
        for i, anchor in enumerate(examples):
            j = int(rng.integers(len(examples) - 1))
            pairs.append((anchor, examples[j if j < i else j + 1], route.name))
    return pairs


def batches_of(pairs: list[Pair], batch_size: int, rng: np.random.Generator) -> list[list[Pair]]:
    """Batches with at most one pair per route, routes drawn in proportion to what is left."""
    queues: dict[str, list[Pair]] = {}
    for pair in pairs:
        queues.setdefault(pair[2], []).append(pair)
    for queue in queues.values():
        rng.shuffle(queue)
    out: list[list[Pair]] = []
    while True:
        routes = [r for r, q in queues.items() if q]
        if len(routes) < 2:
            break
        left = np.array([len(queues[r]) for r in routes], dtype=np.float64)
        size = min(batch_size, len(routes))
        picked = rng.choice(len(routes), size=size, replace=False, p=left / left.sum())
        out.append([queues[routes[i]].pop() for i in sorted(picked.tolist())])
    return out


def finetune(
    table: RouteTable,
    base_model: str,
    out_dir: Path | None,
    models_root: Path,
    config: FinetuneConfig = FinetuneConfig(),
    *,
    device: str = "cpu",
    progress: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> FinetuneResult:
    """Train and save a model directory (under `models_root/<model id>` unless `out_dir`)."""
    stage = on_stage or (lambda _msg: None)
    started = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    location, base_id = resolve_model(base_model)
    model_id = model_id_for(base_id, table, config)
    target = out_dir or models_root / model_id
    examples = sum(len(r.examples) for r in table.routes)
    existing = _existing_id(target)
    if existing == model_id:
        return FinetuneResult(
            model_id=model_id,
            base_model=base_id,
            path=target,
            examples=examples,
            pairs=0,
            steps=0,
            seconds=0.0,
            created=False,
        )
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} exists and holds something else; choose another --out")

    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    stage(f"loading base model {base_id}")
    try:
        model = SentenceTransformer(location, device=device)
    except Exception as exc:  # the library raises many unrelated types for a bad model
        raise ModelUnavailable(f"cannot load base model {base_model!r}: {exc}") from exc
    epochs = [batches_of(training_pairs(table, rng), config.batch_size, rng) for _ in range(config.epochs)]
    total = sum(len(e) for e in epochs)
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    if total == 0:
        raise ValueError("nothing to train on: fine-tuning needs two routes with two or more examples")
    stage(f"training: {total} step(s) of up to {config.batch_size} pairs, {config.epochs} epoch(s)")
    step, pairs = _train(model, epochs, total, config, device=device, progress=progress)
    stage(f"saving {model_id} to {target}")
    _save(
        model,
        target,
        {
            "model_id": model_id,
            "base_model": base_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "examples": examples,
            "routes": len(table.routes),
            "epochs": config.epochs,
            "steps": step,
            "pairs": pairs,
            "config": asdict(config),
            "loss": "MultipleNegativesRankingLoss",
        },
    )
    return FinetuneResult(
        model_id=model_id,
        base_model=base_id,
        path=target,
        examples=examples,
        pairs=pairs,
        steps=step,
        seconds=time.perf_counter() - started,
        created=True,
    )


def _train(
    model: Any, epochs: list[list[list[Pair]]], total: int, config: FinetuneConfig, *, device: str, progress: bool
) -> tuple[int, int]:
    """Up to `total` optimiser steps over the batches, linear warm-up and decay; (steps, pairs)."""
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    loss_fn = MultipleNegativesRankingLoss(model, scale=config.scale)
    optimizer = torch.optim.AdamW(loss_fn.parameters(), lr=config.learning_rate)
    warmup = int(total * config.warmup_ratio)
    schedule = get_linear_schedule_with_warmup(optimizer, warmup, total)  # type: ignore[no-untyped-call]
    model.train()
    step = pairs = 0
    with tqdm(total=total, desc="fine-tuning", unit="step", disable=not progress) as bar:
        for batch in (b for batches in epochs for b in batches):
            if step >= total:
                break
            features = [
                _to(model.preprocess([p[0] for p in batch]), device),
                _to(model.preprocess([p[1] for p in batch]), device),
            ]
            loss = loss_fn(features, torch.empty(0))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(loss_fn.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            pairs += len(batch)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return step, pairs


def _to(features: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}


def _existing_id(path: Path) -> str | None:
    try:
        return str(json.loads((path / MODEL_ID_FILE).read_text(encoding="utf-8"))["model_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save(model: Any, target: Path, marker: dict[str, Any]) -> None:
    """Write into a sibling temporary directory, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        model.save(str(work))
        (work / MODEL_ID_FILE).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        if target.exists():
            target.rmdir()  # empty (checked before training)
        os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
