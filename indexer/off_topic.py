"""What `calibrate` does about off-topic queries: where they come from, and what it keeps
when there are none.

A validation file without out-of-scope queries (a data set with no such label, imported with
`--val-share`) cannot say what rejecting is worth: tuned on in-scope queries alone, every
fallback counts against a setting, and the threshold falls until almost nothing is rejected
(README's workflow on CLINC150's train without its oos lines, MiniLM: k=15 and threshold 0.39
written, test fallback recall from the routes' 50.5% to 25.0%). So calibration
then keeps the routes' threshold, says so loudly, and searches the rest; `--off-topic FILE`
adds labelled off-topic queries, and `--no-off-topic` tunes the threshold anyway.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.labelled import Labelled, LabelledQuery, is_fallback_label

if TYPE_CHECKING:
    from indexer.context import Context
    from router_core import DecisionParams


@dataclass(frozen=True)
class OffTopic:
    """`calibrate --off-topic FILE` (repeatable: their out-of-scope queries are added to the
    validation queries) or `--no-off-topic` (calibrate without any, threshold included)."""

    files: tuple[Path, ...] = ()
    go_without: bool = False

    def queries(
        self, extra: Sequence[LabelledQuery], val: Sequence[LabelledQuery], default_route: str
    ) -> list[LabelledQuery]:
        """The out-of-scope queries of the --off-topic files not already among `val`'s texts."""
        if not self.files:
            return []
        seen = {q.text for q in val}
        found = []
        for q in extra:
            if is_fallback_label(q.label, default_route) and q.text not in seen:
                seen.add(q.text)
                found.append(q)
        if not found:
            named = " ".join(f"--off-topic {f}" for f in self.files)
            verb = "holds" if len(self.files) == 1 else "hold"
            raise ValueError(f"{named} {verb} no new query labelled oos (or {default_route!r}) to add")
        return found

    def hold_threshold(self, ctx: Context, file: Path, data: Labelled, base: DecisionParams) -> bool:
        """Whether to keep the given threshold: when the queries hold no out-of-scope one and
        --no-off-topic was not given (said loudly, on stdout and stderr)."""
        from indexer.context import CommandRefused

        found = sum(is_fallback_label(label, base.default_route) for label in data.labels)
        if found and self.go_without:
            raise CommandRefused(
                f"--no-off-topic, but {file} holds {found} out-of-scope queries: drop the flag to calibrate on them"
            )
        if found:
            return False
        if self.go_without:
            print(
                f"warning: {file} holds no out-of-scope query and --no-off-topic was given: the threshold is "
                "tuned on in-scope queries alone, so it will fall and fallback recall is not measured",
                file=ctx.out,
            )
            return False
        print(self.banner(file, base), file=ctx.out)
        print(
            f"warning: {file} holds no out-of-scope query: the routes' threshold is kept "
            "(--off-topic FILE adds some; --no-off-topic tunes it anyway)",
            file=sys.stderr,
        )
        return True

    @staticmethod
    def banner(file: Path, base: DecisionParams) -> str:
        """The loud explanation printed before a calibration that keeps the threshold."""
        rule = "=" * 100
        return (
            f"{rule}\nWARNING: {file} holds no out-of-scope query (label oos or {base.default_route!r}).\n"
            "Calibrated on in-scope queries alone, every fallback would count against a setting and the\n"
            "threshold would fall until almost nothing is rejected: off-topic queries would then reach the\n"
            f"specialist agents. So the routes' threshold is KEPT: {_threshold(base)}; k, vote, tie-break and\n"
            "margin are searched for in-scope accuracy.\n"
            "To calibrate the threshold too, add labelled off-topic queries: --off-topic FILE (JSON Lines,\n"
            "its lines labelled oos are added; never the test file). To tune it on in-scope queries anyway:\n"
            f"--no-off-topic.\n{rule}"
        )

    @staticmethod
    def reminder(base: DecisionParams) -> str:
        """The one line repeated after the report."""
        return (
            f"note: no out-of-scope query was seen, so the routes' threshold was kept: {_threshold(base)}; "
            "fallback recall was not measured"
        )


def _threshold(base: DecisionParams) -> str:
    per_route = f", {len(base.route_thresholds)} per-route thresholds" if base.route_thresholds else ""
    return f"threshold {base.threshold:g} ({base.threshold_mode} mode{per_route})"
