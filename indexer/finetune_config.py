"""The settings of `python -m indexer finetune` (light: the command's --help reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FinetuneConfig:
    """Training settings; all of them go into the model id."""

    epochs: int = 1
    batch_size: int = 64
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    max_steps: int | None = None
    scale: float = 20.0
    seed: int = 13

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be 1 or more, not {self.epochs}")
        if self.batch_size < 2:
            # One pair per batch has no in-batch negative: the loss would be zero.
            problems.append(f"batch size must be 2 or more, not {self.batch_size}")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max steps must be 1 or more, not {self.max_steps}")
        if not self.learning_rate > 0:
            problems.append(f"learning rate must be positive, not {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup ratio must be in [0, 1), not {self.warmup_ratio}")
        if problems:
            raise ValueError("; ".join(problems))
