"""`python -m indexer [reindex] [--dry-run]`: validate routes, embed, publish, switch.

Route tooling on the live index: `eval`, `calibrate`, `hygiene`, `finetune`, and `import`
(labelled JSON Lines to a routes directory); see `python -m indexer COMMAND --help`. Each
command declares its options and runs in its own module (`indexer/commands/`); this one
assembles the parser, reads the settings and maps errors to exit codes.

Exit codes: 0 done, 2 invalid routes, input or arguments, 1 any other failure (a re-index
then leaves the live index exactly as it was).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from indexer.command import SHARED, add_shared
from indexer.commands import COMMANDS, DEFAULT

if TYPE_CHECKING:
    from router_core import Embedder, RouterSettings

_BY_NAME = {c.name: c for c in COMMANDS}


def build_parser() -> tuple[argparse.ArgumentParser, frozenset[str]]:
    """The parser, and the options the default command takes before any command name."""
    parser = argparse.ArgumentParser(
        prog="python -m indexer",
        description="Validate routes/, embed their examples and publish a new index version "
        "(the default command, `reindex`), or work on route quality (eval, calibrate, hygiene, "
        "finetune, import).",
    )
    # Before the command: the shared options and the default command's own, each with the same
    # meaning as after it. Defaults are SUPPRESS: an option not given leaves no attribute.
    add_shared(parser, SHARED)
    before = {a.dest for a in parser._actions}
    DEFAULT.configure(parser)
    default_own = frozenset({a.dest for a in parser._actions} - before)
    sub = parser.add_subparsers(dest="command")
    for command in COMMANDS:
        command.add_to(sub)
    return parser, default_own


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; an option given before a command that does not take it is an
    error (exit 2), never silently dropped."""
    parser, default_own = build_parser()
    args = parser.parse_args(argv)
    args.command = args.command or DEFAULT.name
    command = _BY_NAME[args.command]
    accepted = command.shared | (default_own if command is DEFAULT else frozenset())
    for name in sorted((SHARED | default_own) - accepted):
        if hasattr(args, name):
            parser.error(f"--{name.replace('_', '-')} does not apply to `{args.command}`")
    args.quiet = bool(getattr(args, "quiet", False))
    return args


def settings_from(args: argparse.Namespace, base: RouterSettings) -> RouterSettings:
    """Settings from the environment, overridden by command-line options."""
    update: dict[str, object] = {}
    if getattr(args, "routes", None):
        update["routes_dir"] = args.routes
        update["route_sets"] = []  # --routes names the sets' folders, over ROUTER_ROUTE_SETS
    if getattr(args, "data_dir", None):
        update["index"] = base.index.model_copy(update={"data_dir": args.data_dir})
    if getattr(args, "model", None):
        update["embedding"] = base.embedding.model_copy(update={"model": args.model})
    return base.model_copy(update=update)


def for_set(
    args: argparse.Namespace, settings: RouterSettings, configured: RouterSettings
) -> tuple[RouterSettings, RouterSettings]:
    """The settings (and the configured ones) narrowed to the route set `--set` names, else to
    the default set; unchanged in the single-folder layout, and for `reindex` without `--set`
    (it re-indexes every set). RouteSetsInvalid or RouteSetUnknown naming the problem."""
    from indexer.hints import configured_for
    from router_core import route_sets_of

    name = getattr(args, "set", None)
    found = route_sets_of(settings)
    if name is None and (args.command == DEFAULT.name or found.layout == "single"):
        return settings, configured
    name = name or found.default
    return found.settings_for(settings, name), configured_for(configured, name)


def main(argv: Sequence[str] | None = None, *, out: TextIO = sys.stdout, embedder: Embedder | None = None) -> int:
    """Run one command; `embedder` lets a caller reuse a loaded model (else it loads when needed)."""
    args = parse(argv)  # first: --help and argument errors need nothing else
    from indexer.context import CommandRefused, Context, print_error
    from indexer.labelled import LabelledDataInvalid
    from indexer.settings import IndexerSettings
    from router_core import RouterError, RouteSetsInvalid, RouteSetUnknown, RoutesInvalid
    from router_core.settings import settings_problems

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    try:
        configured = IndexerSettings()
    except ValueError as exc:  # pydantic's ValidationError, pydantic-settings' SettingsError
        # Named, never echoed: a value set under the wrong name may be a key.
        lines = "\n".join(f"  - {line}" for line in settings_problems(exc, IndexerSettings))
        print_error(f"invalid settings in the environment or .env:\n{lines}")
        return 2
    command = _BY_NAME[args.command]
    try:
        settings, configured_here = for_set(args, settings_from(args, configured), configured)
    except (RouteSetsInvalid, RouteSetUnknown) as exc:
        print_error(str(exc))
        return 2
    origin = settings.route_set_origin
    if origin is not None:
        print(f"route set: {origin[1]} ({settings.routes_dir})", file=out)
    ctx = Context(settings, configured_here, out, not args.quiet, embedder)
    try:
        code = command.run(ctx, args)
    except (RoutesInvalid, LabelledDataInvalid, CommandRefused, ValueError, FileExistsError) as exc:
        print_error(str(exc))  # FileExistsError: an --out that holds something else
        return 2
    except (RouterError, OSError) as exc:  # OSError: an output path that cannot be written
        print_error(str(exc))
        return 1
    if code == 0 and command is not DEFAULT:
        print(f"done in {time.perf_counter() - started:.1f} s", file=out)
    return code
