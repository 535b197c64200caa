"""The router's own error classes: adapters turn vendor exceptions into these."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class RouterError(Exception):
    """Base class of every error the router raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one routes file."""

    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.reason}"


class RoutesInvalid(RouterError):
    """The routes directory does not validate; nothing was indexed."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"routes are invalid ({len(self.problems)} problem(s)):\n{lines}")


class IndexMissing(RouterError):
    """No live index version exists yet: run the re-index command first."""


class IndexIncompatible(RouterError):
    """The live index was built with another embedding model or dimension."""


class IndexBusy(RouterError):
    """Another re-index holds the index's writer lock; this one changed nothing."""


class StoreUnavailable(RouterError):
    """The vector store (Qdrant) cannot be reached or refused the operation."""


class ModelUnavailable(RouterError):
    """The embedding model cannot be loaded from the configured name or path."""
