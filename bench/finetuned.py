"""Routing quality with a fine-tuned model: the issue's route to its quality targets.

The default model is fine-tuned on the train split's route examples (one epoch of
MultipleNegativesRankingLoss, `indexer.finetune`, the same code as `python -m indexer
finetune`), the routes are indexed again with the tuned model, and that index is scored like
the base one: routes' defaults, and calibrated on val. Test is never seen before scoring.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.quality import our_quality
from indexer.finetune import FinetuneConfig, finetune
from indexer.labelled import LabelledQuery
from router_core import RouteTable, load_embedder, run_reindex
from router_core.embedding import DEFAULT_MODEL
from router_core.store import EdgeStore

QUICK_STEPS = 20


def finetuned_quality(
    table: RouteTable,
    work: Path,
    val: list[LabelledQuery],
    test: list[LabelledQuery],
    *,
    quick: bool,
    log: Any = print,
) -> dict[str, Any]:
    """Fine-tune, index with the tuned model, and score it on test (defaults and calibrated)."""
    config = FinetuneConfig(max_steps=QUICK_STEPS if quick else None)
    trained = finetune(
        table,
        DEFAULT_MODEL,
        work / "model-ft",
        work / "models",
        config,
        progress=False,
        on_stage=lambda msg: log(f"fine-tuning: {msg}"),
    )
    log(f"fine-tuned {trained.model_id}: {trained.steps} steps in {trained.seconds:.0f} s")
    tuned = load_embedder(str(trained.path))
    store = EdgeStore(work / "index-ft")
    t0 = time.perf_counter()
    run_reindex(table, store, tuned)
    build_s = time.perf_counter() - t0
    log(f"indexed {sum(len(r.examples) for r in table.routes)} examples with it in {build_s:.1f} s")
    quality = our_quality(tuned, store, val, test, log=log)
    return {
        "model_id": trained.model_id,
        "config": {
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "learning_rate": config.learning_rate,
            "max_steps": config.max_steps,
        },
        "steps": trained.steps,
        "pairs": trained.pairs,
        "train_s": round(trained.seconds, 1),
        "index_build_s": round(build_s, 1),
        "default": quality["ours_default"],
        "calibrated": quality["ours_calibrated"],
    }
