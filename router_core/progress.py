"""Where a long step (embedding thousands of texts, a calibration search) reports how far it got."""

from __future__ import annotations

from typing import Protocol


class Steps(Protocol):
    """Stages of counted work; the indexer shows them on stderr (indexer.progress.Progress)."""

    def stage(self, label: str, total: int) -> None:
        """Start a stage of `total` steps (the previous one is finished)."""

    def advance(self, steps: int = 1) -> None:
        """Count `steps` more steps of the current stage."""


class NoSteps:
    """Steps that nobody watches."""

    def stage(self, label: str, total: int) -> None:
        """Nothing to show."""

    def advance(self, steps: int = 1) -> None:
        """Nothing to show."""
