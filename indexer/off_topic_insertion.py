"""Labelled conversations with off-topic queries put into them, and the cross-validation folds.

`calibrate`, `eval --off-topic` and the conversation benchmarks measure how often an
off-topic request sent mid-chat reaches the default route (`insert_off_topic`: a later user
turn replaced by the query) and what one off-topic exchange does to the next in-domain turn
(`interrupt_with_off_topic`). An inserted conversation's id carries its source's, so
`fold_of` keeps it in the same cross-validation part as the conversation it came from.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import replace

from indexer.conversations import LabelledConversation, LabelledTurn
from router_core import Turn

OFF_TOPIC_LABEL = "oos"
FOLDS = 5
_OFF_TOPIC_ID = "+off-topic-"


def insert_off_topic(
    conversations: Sequence[LabelledConversation], queries: Sequence[str], *, seed: int = 0
) -> list[LabelledConversation]:
    """For each off-topic query, a conversation cut before one of its later labelled user turns,
    with that turn replaced by the query (labelled to fall back). Seeded, deterministic."""
    rng = random.Random(seed)
    usable = [c for c in conversations if any(label.position > 0 for label in c.labels)]
    if not usable:
        return []
    out = []
    for n, query in enumerate(queries):
        c = usable[rng.randrange(len(usable))]
        label = rng.choice([lab for lab in c.labels if lab.position > 0])
        turns = (*c.messages[: label.position], Turn(label.position, "user", query))
        out.append(
            LabelledConversation(
                f"{c.id}{_OFF_TOPIC_ID}{n}",
                turns,
                (LabelledTurn(c.id, label.position, OFF_TOPIC_LABEL, first_of_domain=False, switch=True),),
            )
        )
    return out


def interrupt_with_off_topic(
    conversations: Sequence[LabelledConversation], queries: Sequence[str], *, reply: str | None, seed: int = 0
) -> tuple[list[LabelledConversation], list[LabelledConversation]]:
    """The turn after an off-topic message: for each query, a later labelled user turn of a
    conversation (seeded choice), as it was (first list) and with the query (and the default
    agent's `reply`, unless None) inserted just before it (second list). Only that turn is
    labelled in both, with its own route and turn type."""
    rng = random.Random(seed)
    usable = [(c, label) for c in conversations for label in c.labels if label.position > 0]
    plain: list[LabelledConversation] = []
    interrupted: list[LabelledConversation] = []
    for n, query in enumerate(queries):
        if not usable:
            break
        c, label = usable[rng.randrange(len(usable))]
        extra = [Turn(0, "user", query), *([Turn(0, "assistant", reply)] if reply is not None else [])]
        messages = [*c.messages[: label.position], *extra, c.messages[label.position]]
        renumbered = tuple(Turn(i, t.role, t.text) for i, t in enumerate(messages))
        ident = f"{c.id}{_OFF_TOPIC_ID}{n}"
        plain.append(
            LabelledConversation(ident, c.messages[: label.position + 1], (replace(label, conversation=ident),))
        )
        moved = replace(label, conversation=ident, position=len(renumbered) - 1)
        interrupted.append(LabelledConversation(ident, renumbered, (moved,)))
    return plain, interrupted


def source_conversation(conversation_id: str) -> str:
    """The id of the conversation an inserted off-topic turn was taken from (itself otherwise)."""
    return conversation_id.split(_OFF_TOPIC_ID, maxsplit=1)[0]


def fold_of(conversation_id: str, folds: int = FOLDS) -> int:
    """The cross-validation part of a conversation (an inserted off-topic turn goes with the
    conversation it was inserted into): a hash of its id, stable across runs and machines."""
    base = source_conversation(conversation_id)
    return int(hashlib.sha256(base.encode("utf-8")).hexdigest(), 16) % folds
