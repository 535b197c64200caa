"""What an indexer command is: its name, help, options and the function that runs it, declared
together in one module per command (`indexer/commands/`), as simonw/llm's click commands are.

The options every command may share (`--routes`, `--data-dir`, `--model`, `--quiet`, `--set`) are
declared once here; a command names the ones it accepts, and `indexer.cli` lets them stand
before or after the command's name, with the same meaning.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from indexer.context import Context

SHARED = frozenset({"routes", "data_dir", "model", "quiet", "set"})
_DATA_DIR_HELP = "embedded index directory (ROUTER_INDEX__DATA_DIR)"


def _no_options(parser: argparse.ArgumentParser) -> None:
    """A command with no options of its own."""


@dataclass(frozen=True)
class Command:
    """One subcommand of `python -m indexer`."""

    name: str
    help: str
    description: str
    run: Callable[[Context, argparse.Namespace], int]
    configure: Callable[[argparse.ArgumentParser], None] = _no_options
    shared: frozenset[str] = SHARED  # the shared options it accepts
    epilog: str | None = None
    reports: bool = False  # takes --json PATH and --html PATH
    data_dir_help: str = _DATA_DIR_HELP

    def add_to(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
        """Its parser, with its own options and the shared ones it accepts."""
        parser = sub.add_parser(
            self.name,
            help=self.help,
            description=self.description,
            epilog=self.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter if self.epilog else argparse.HelpFormatter,
        )
        self.configure(parser)
        add_shared(parser, self.shared, data_dir_help=self.data_dir_help)
        if self.reports:
            parser.add_argument("--json", type=Path, dest="json_path", metavar="PATH", help="write JSON here")
            parser.add_argument("--html", type=Path, dest="html_path", metavar="PATH", help="write an HTML report here")
        return parser


def add_shared(
    parser: argparse.ArgumentParser,
    names: frozenset[str],
    *,
    default: object = argparse.SUPPRESS,
    data_dir_help: str = _DATA_DIR_HELP,
) -> None:
    """The shared options in `names`. A subcommand's default is SUPPRESS, so that an option
    given before the command is not overwritten by the subcommand's default."""
    kw: dict[str, Any] = {"default": default}
    if "routes" in names:
        parser.add_argument(
            "--routes", type=Path, help="routes directory, or a routes root of set folders (ROUTER_ROUTES_DIR)", **kw
        )
    if "set" in names:
        parser.add_argument(
            "--set",
            metavar="NAME",
            help="the route set (a folder of the routes root, or a name of ROUTER_ROUTE_SETS); reindex: every "
            "set without it, the other commands: the default set",
            **kw,
        )
    if "data_dir" in names:
        parser.add_argument("--data-dir", type=Path, help=data_dir_help, **kw)
    if "model" in names:
        parser.add_argument("--model", help="embedding model name or path (ROUTER_EMBEDDING__MODEL)", **kw)
    if "quiet" in names:
        parser.add_argument("--quiet", action="store_true", help="no progress on stderr", **kw)
