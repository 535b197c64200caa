"""Learning a route set's follow-ups from labelled conversations (router_core.follow_ups).

A follow-up is a labelled user turn that continues its conversation: not the first turn of
its domain, not the conversation's first user message, and labelled with a route (not the
default route). `python -m indexer calibrate` writes the follow-ups of the file it calibrates
on into `_follow_ups.yaml`.

Calibrating on the same file would flatter: every follow-up of the file is in the bank, at
cosine 1 from itself. So while calibrating, each turn is scored against the follow-ups of the
*other* conversations only (`held_out_similarity`): what a conversation the route set has
never seen meets when served.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import yaml

from indexer.conversations import Prepared
from indexer.labelled import is_fallback_label
from indexer.off_topic_insertion import source_conversation
from router_core import RoutePolicy
from router_core.embedding import Vectors
from router_core.follow_ups import MAX_FOLLOW_UPS
from router_core.params import DecisionParams
from router_core.routes import MAX_EXAMPLE_CHARS, normalise_utterance


def follow_up_owners(
    prepared: Prepared, params: DecisionParams, max_bytes: int = RoutePolicy().max_file_bytes
) -> dict[str, set[str]]:
    """The follow-ups of a prepared file (whitespace collapsed, first spelling of each kept),
    each with the conversations it occurs in; in file order, at most MAX_FOLLOW_UPS and as many
    as `_follow_ups.yaml` holds in `max_bytes` (the routes directory's file limit)."""
    owners: dict[str, set[str]] = {}
    spelling: dict[str, str] = {}
    size = HEADER_BYTES
    for turns, label in zip(prepared.requests, prepared.labels, strict=True):
        if label.first_of_domain or is_fallback_label(label.route, params.default_route):
            continue
        if sum(t.role == "user" for t in turns) < 2:
            continue
        text = " ".join(turns[-1].text.split())
        if not text or len(text) > MAX_EXAMPLE_CHARS:
            continue
        key = normalise_utterance(text)
        if key not in spelling:
            line = len(yaml.safe_dump([text], allow_unicode=True, width=1000).encode())
            if len(spelling) >= MAX_FOLLOW_UPS or size + line > max_bytes:
                continue
            size += line
            spelling[key] = text
        owners.setdefault(spelling[key], set()).add(label.conversation)
    return owners


HEADER_BYTES = 512  # the file's comment and key, with room to spare


def bank_vectors(prepared: Prepared, texts: Sequence[str]) -> Vectors:
    """The vectors of follow-ups taken from `prepared` (their texts as routed there)."""
    by_key = {normalise_utterance(lay.last.text): lay.last.text for lay in prepared.layouts}
    rows = [prepared.vectors[by_key[normalise_utterance(t)]] for t in texts]
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)


def held_out_similarity(target: Prepared, source: Prepared, owners: dict[str, set[str]]) -> npt.NDArray[np.float64]:
    """Per labelled turn of `target`: its routed message's best cosine to the follow-ups of
    `source` (`owners`, from `follow_up_owners`), leaving out those that occur only in the
    turn's own conversation (-inf: none left)."""
    texts = list(owners)
    if not texts or not target.layouts:
        return np.full(len(target.layouts), -np.inf)
    bank = bank_vectors(source, texts)
    queries = np.stack([target.vectors[lay.last.text] for lay in target.layouts])
    sims = queries @ bank.T
    # a turn taken from a conversation with an off-topic query inserted is still that conversation's
    theirs = [source_conversation(g.conversation) for g in target.labels]
    conversations = sorted({c for o in owners.values() for c in o} | set(theirs))
    ids = {c: i for i, c in enumerate(conversations)}
    sole = np.array([ids[next(iter(o))] if len(o) == 1 else -1 for o in owners.values()])
    mine = np.array([ids[c] for c in theirs])
    sims = np.where(sole[None, :] == mine[:, None], -np.inf, sims)
    return np.asarray(sims.max(axis=1), np.float64)
