"""`python -m indexer finetune`: fine-tune the embedding model on the route examples."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.command import Command
from indexer.finetune_config import FinetuneConfig

if TYPE_CHECKING:
    from indexer.context import Context


def configure(parser: argparse.ArgumentParser) -> None:
    """The training settings (all of them go into the model id) and where the model goes."""
    defaults = FinetuneConfig()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.learning_rate, help="learning rate")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", type=Path, help="model directory (default: <data dir>/models/<model id>)")


def run(ctx: Context, args: argparse.Namespace) -> int:
    """Train with the options' settings."""
    config = FinetuneConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        max_steps=args.max_steps,
        seed=args.seed,
    )
    return run_finetune(ctx, config=config, out_dir=args.out)


def run_finetune(ctx: Context, *, config: FinetuneConfig, out_dir: Path | None) -> int:
    """`finetune`: train on the routes' examples and write a versioned model directory."""
    from indexer.finetune import finetune
    from indexer.hints import reindex_hint, with_model
    from router_core import load_routes

    settings, out, progress = ctx.settings, ctx.out, ctx.progress
    table = load_routes(settings.routes_dir, settings.route_files.policy())
    examples = sum(len(r.examples) for r in table.routes)
    print(
        f"fine-tuning {settings.embedding.model} on {examples} examples of {len(table.routes)} routes "
        "(MultipleNegativesRankingLoss, CPU)",
        file=out,
    )
    result = finetune(
        table,
        settings.embedding.model,
        out_dir,
        settings.index.data_dir / "models",
        config,
        device=settings.embedding.device,
        progress=progress,
        on_stage=lambda msg: print(f"... {msg}", file=out),
    )
    if result.created:
        print(
            f"model {result.model_id}: {result.steps} step(s) over {result.pairs} pairs in "
            f"{result.seconds:.0f} s\n  saved to {result.path}",
            file=out,
        )
    else:
        print(
            f"model {result.model_id} already exists at {result.path} (same base, examples and "
            "settings); nothing trained",
            file=out,
        )
    print(
        "next: index with it (the index records its id; the service must load the same model, "
        f"ROUTER_EMBEDDING__MODEL={shlex.quote(str(result.path))}):\n"
        f"  {reindex_hint(with_model(settings, result.path), ctx.configured)}",
        file=out,
    )
    return 0


COMMAND = Command(
    name="finetune",
    help="fine-tune the embedding model on the route examples (explicit step)",
    description="Fine-tune the embedding model on the route examples with "
    "MultipleNegativesRankingLoss (pairs of examples of one route; the other routes in the "
    "batch are negatives), on CPU, and write a versioned model directory identified by "
    "router-model.json. Index with it afterwards (ROUTER_EMBEDDING__MODEL=<dir>).",
    run=run,
    configure=configure,
)
