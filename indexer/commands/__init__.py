"""The indexer's commands, one module each: its options and the function that runs it."""

from indexer.command import Command
from indexer.commands import calibrate, eval, finetune, hygiene, importing, reindex, review

COMMANDS: tuple[Command, ...] = (
    reindex.COMMAND,
    eval.COMMAND,
    calibrate.COMMAND,
    hygiene.COMMAND,
    finetune.COMMAND,
    importing.COMMAND,
    review.COMMAND,
)
DEFAULT = reindex.COMMAND
