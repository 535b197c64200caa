"""`python -m indexer review ACTION`: the playground's Review tab from the command line: the
queues of the decision log, accepting misrouted queries as examples (or held-out evaluation
queries), marking, exporting labelled JSON Lines."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.command import SHARED, Command, add_shared
from router_core.decision_log import QUEUES

if TYPE_CHECKING:
    from indexer.context import Context


def configure(parser: argparse.ArgumentParser) -> None:
    """The actions, each taking the shared options after its name too."""
    actions = parser.add_subparsers(dest="review_action", required=True)
    ls = actions.add_parser("list", help="a review queue, newest first")
    ls.add_argument("--queue", choices=QUEUES, default="feedback", help="which queue (default feedback)")
    ls.add_argument("--limit", type=int, default=50, help="rows shown (default 50)")
    acc = actions.add_parser("accept", help="add decisions as examples of a route (or to the evaluation file)")
    acc.add_argument("ids", type=int, nargs="+", help="decision ids (from `review list`)")
    acc.add_argument("--route", help="the route (default: the one their feedback names; `default` with --eval)")
    acc.add_argument("--eval", action="store_true", help="hold them out in the evaluation file instead")
    acc.add_argument("--write", action="store_true", help="save the change shown (else nothing is written)")
    marks = []
    for name, text in (("right", "mark decisions as right"), ("dismiss", "dismiss decisions")):
        mark = actions.add_parser(name, help=text)
        mark.add_argument("ids", type=int, nargs="+", help="decision ids")
        marks.append(mark)
    ex = actions.add_parser("export", help="labelled JSON Lines of the decisions whose right route is known")
    ex.add_argument("--out", type=Path, required=True, help="where to write them")
    for action in (ls, acc, *marks, ex):
        action.add_argument(
            "--evals", type=Path, default=Path("evals"), help="evaluation files directory (default evals)"
        )
        add_shared(action, SHARED)


def run(ctx: Context, args: argparse.Namespace) -> int:
    """Run the action."""
    from indexer.review import run_review

    return run_review(ctx, args)


COMMAND = Command(
    name="review",
    help="review logged decisions: list, accept into routes or evals, export labelled JSON Lines",
    description="Work through the decision log the service records: the queues, adding a "
    "misrouted query as an example of the right route (diff and the guard's figures first; "
    "--write saves), holding it out in the evaluation file, and exporting what is labelled.",
    run=run,
    configure=configure,
)
