"""Learning a route set's replies from labelled conversations (router_core.replies).

A reply is the agent message just before a labelled user turn that is not the conversation's
first user message (and not labelled to fall back), read as the conversation rule reads it (its
end); it counts a new topic when that turn is the first of its domain, the same topic
otherwise. `python -m indexer calibrate` writes the replies of the file it calibrates on into
`_replies.yaml`.

As with follow-ups (indexer.follow_up_bank), calibrating on the same file would flatter: a
conversation's own replies would tell it when its topic changes. While calibrating, each turn
meets only the replies of the *other* conversations (`held_out_chances`): what a conversation
the route set has never seen meets when served.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import yaml

from indexer.conversations import Prepared
from indexer.labelled import is_fallback_label
from indexer.off_topic_insertion import source_conversation
from router_core import RoutePolicy
from router_core.params import DecisionParams
from router_core.replies import MAX_REPLIES, Reply, ReplyBank, new_topic_chance, reply_bank
from router_core.routes import MAX_EXAMPLE_CHARS, normalise_utterance

Counts = dict[str, list[int]]  # conversation -> [new topic, same topic]
HEADER_BYTES = 768  # the file's comment and key, with room to spare
ENTRY_BYTES = 48  # an entry's keys and counts beside its text


def reply_owners(
    prepared: Prepared, params: DecisionParams, max_bytes: int = RoutePolicy().max_file_bytes
) -> dict[str, Counts]:
    """The replies of a prepared file (whitespace collapsed, first spelling of each kept), each
    with its counts per conversation; in file order, at most MAX_REPLIES and as many as
    `_replies.yaml` holds in `max_bytes` (the routes directory's file limit)."""
    owners: dict[str, Counts] = {}
    spelling: dict[str, str] = {}
    size = HEADER_BYTES
    for lay, label in zip(prepared.layouts, prepared.labels, strict=True):
        if lay.users < 2 or is_fallback_label(label.route, params.default_route):
            continue
        if len(lay.messages) < 2 or lay.messages[-2].role != "assistant":
            continue
        text = " ".join(lay.messages[-2].text.split())
        if not text or len(text) > MAX_EXAMPLE_CHARS or lay.messages[-2].text not in prepared.vectors:
            continue
        key = normalise_utterance(text)
        if key not in spelling:
            line = ENTRY_BYTES + len(yaml.safe_dump([text], allow_unicode=True, width=1000).encode())
            if len(spelling) >= MAX_REPLIES or size + line > max_bytes:
                continue
            size += line
            spelling[key] = lay.messages[-2].text
        counts = owners.setdefault(spelling[key], {}).setdefault(label.conversation, [0, 0])
        counts[0 if label.first_of_domain else 1] += 1
    return owners


def replies_of(owners: Mapping[str, Counts]) -> tuple[Reply, ...]:
    """The replies to write: each text with its counts over every conversation."""
    return tuple(
        Reply(" ".join(text.split()), sum(c[0] for c in per.values()), sum(c[1] for c in per.values()))
        for text, per in owners.items()
    )


def held_out_chances(target: Prepared, source: Prepared, owners: Mapping[str, Counts]) -> tuple[dict[str, float], ...]:
    """Per labelled turn of `target`: its agent messages' chance of a new topic after them, by
    text, from the replies of `source` (`owners`, from `reply_owners`) without what the turn's
    own conversation counted (router_core.replies.new_topic_chance on the rest). The turns of
    one conversation share one mapping."""
    texts = list(owners)
    if not texts or not target.layouts:
        return tuple({} for _ in target.layouts)
    # the whole bank as a served version holds it (unit rows, counts over every conversation)
    whole = reply_bank(np.stack([source.vectors[t] for t in texts]).astype(np.float32), replies_of(owners))
    own: dict[str, list[tuple[int, int, int]]] = {}  # conversation -> (row, new, same) it counted
    for row, t in enumerate(texts):
        for conv, (n, m) in owners[t].items():
            own.setdefault(conv, []).append((row, n, m))
    by_conversation: dict[str, list[str]] = {}
    for lay, label in zip(target.layouts, target.labels, strict=True):
        # a turn taken from a conversation with an off-topic query inserted is still that conversation's
        wanted = by_conversation.setdefault(source_conversation(label.conversation), [])
        wanted.extend(lay.messages[j].text for j in lay.read if lay.messages[j].role == "assistant")
    chances: dict[str, dict[str, float]] = {}
    for conv, wanted in by_conversation.items():
        asked = list(dict.fromkeys(wanted))
        if not asked:
            chances[conv] = {}
            continue
        conv_new, conv_total = whole.new_topic.copy(), whole.total.copy()
        for row, n, m in own.get(conv, ()):  # what this conversation counted; a reply only it gave counts nothing
            conv_new[row] -= n
            conv_total[row] -= n + m
        chance = new_topic_chance(
            np.stack([target.vectors[t] for t in asked]), ReplyBank(whole.vectors, conv_new, conv_total)
        )
        chances[conv] = {t: float(c) for t, c in zip(asked, chance, strict=True) if np.isfinite(c)}
    return tuple(chances[source_conversation(label.conversation)] for label in target.labels)


def reply_bank_of(prepared: Prepared, replies: Sequence[Reply]) -> ReplyBank | None:
    """The bank of replies learnt from `prepared` (their vectors as embedded there), as a served
    version holds it (None: no replies)."""
    if not replies:
        return None
    by_key: dict[str, str] = {}
    for lay in prepared.layouts:
        for m in lay.messages:
            if m.role == "assistant" and m.text in prepared.vectors:
                by_key.setdefault(normalise_utterance(m.text), m.text)
    vectors = np.stack([prepared.vectors[by_key[normalise_utterance(r.text)]] for r in replies]).astype(np.float32)
    return reply_bank(vectors, replies)
