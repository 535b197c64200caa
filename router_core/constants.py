"""The named constants that change routing decisions without being parameters of a route set.

They are code, not configuration: changing one changes decisions for every route set, so every
index version records them (`RouteTable.to_dict`, hence the version's fingerprint): a re-index
after an upgrade that changed one publishes a new version saying so, and `/admin/index` shows
what the served version was built under. Tunable values are parameters instead
(`router_core.params`).
"""

from __future__ import annotations

import hashlib

# The conversation rule (router_core.conversation_engine).
CONTEXT_MESSAGES = 3  # a user message's context: this many messages before it (in the window), then itself
CONTEXT_WEIGHT_CHARS = 300  # a message weighs its length in characters in a context, up to this
ASSISTANT_TAIL_CHARS = 200  # of an assistant message the rule reads its end (an agent's answer can be long)
EVIDENCE_SCALE = 8.0  # log-odds per unit of evidence (similarity above the floor, summed over neighbours)
REPLY_NEIGHBOURS = 10  # an agent message's chance of a new topic: from this many nearest known replies
REPLY_SIMILARITY = 0.6  # ... each at least this close to it (none: no estimate, the switch chance stands)

# What the decision model is shown (router_core.llm_routing): longer texts are cut.
MAX_DESCRIPTION_CHARS = 300
MAX_EXAMPLE_CHARS = 200
MAX_MESSAGE_CHARS = 1000


def recorded(ignored_words: frozenset[str]) -> dict[str, object]:
    """The constants as recorded with an index version; the conversation rule's word list (the
    words that do not make a message a request of its own) by a short hash of its contents."""
    words = hashlib.sha256("\n".join(sorted(ignored_words)).encode("utf-8")).hexdigest()[:16]
    return {
        "conversation.context_messages": CONTEXT_MESSAGES,
        "conversation.context_weight_chars": CONTEXT_WEIGHT_CHARS,
        "conversation.assistant_tail_chars": ASSISTANT_TAIL_CHARS,
        "conversation.evidence_scale": EVIDENCE_SCALE,
        "conversation.reply_neighbours": REPLY_NEIGHBOURS,
        "conversation.reply_similarity": REPLY_SIMILARITY,
        "conversation.ignored_words_sha256": words,
        "llm.max_description_chars": MAX_DESCRIPTION_CHARS,
        "llm.max_example_chars": MAX_EXAMPLE_CHARS,
        "llm.max_message_chars": MAX_MESSAGE_CHARS,
    }
