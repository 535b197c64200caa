"""The CLINC150 splits the benchmark reads, and the smaller subset a `--quick` run uses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from indexer.labelled import OOS_LABEL, LabelledQuery, load_labelled

DATASET = "clinc150"


@dataclass(frozen=True)
class Splits:
    """train (route examples), val (calibration) and test (reporting only)."""

    train: tuple[LabelledQuery, ...]
    val: tuple[LabelledQuery, ...]
    test: tuple[LabelledQuery, ...]

    def sizes(self) -> dict[str, dict[str, int]]:
        """Queries, in-scope labels and out-of-scope queries per split."""
        return {
            name: {
                "queries": len(items),
                "labels": len({q.label for q in items if q.label != OOS_LABEL}),
                "oos": sum(q.label == OOS_LABEL for q in items),
            }
            for name, items in (("train", self.train), ("val", self.val), ("test", self.test))
        }


def load_splits(datasets: Path) -> Splits:
    """Read `<datasets>/clinc150/{train,val,test}.jsonl`."""
    folder = datasets / DATASET
    return Splits(
        tuple(load_labelled(folder / "train.jsonl")),
        tuple(load_labelled(folder / "val.jsonl")),
        tuple(load_labelled(folder / "test.jsonl")),
    )


def subset(splits: Splits, labels: int, *, min_oos: int = 50) -> Splits:
    """The first `labels` intents (sorted by name) in every split, with out-of-scope queries
    kept in the same proportion as the full split (at least `min_oos` where there are that many).
    """
    all_labels = sorted({q.label for q in splits.train if q.label != OOS_LABEL})
    keep = set(all_labels[:labels])
    share = len(keep) / max(len(all_labels), 1)

    def cut(items: Sequence[LabelledQuery]) -> tuple[LabelledQuery, ...]:
        oos = [q for q in items if q.label == OOS_LABEL]
        n_oos = min(len(oos), max(round(len(oos) * share), min_oos))
        return tuple(q for q in items if q.label in keep) + tuple(oos[:n_oos])

    return Splits(cut(splits.train), cut(splits.val), cut(splits.test))


def write_jsonl(items: Sequence[LabelledQuery], path: Path) -> Path:
    """Write queries as JSON Lines `{"text", "label"}` (the peer and the importer read these)."""
    with path.open("w", encoding="utf-8") as fh:
        for q in items:
            fh.write(json.dumps({"text": q.text, "label": q.label}) + "\n")
    return path
