"""The one rule for what counts as a usable query, shared by every endpoint and the schema.

A query must contain at least one character that is neither whitespace (as JSON Schema's
regex `\\s` defines it) nor a control character; surrounding blanks are stripped before the
length limit applies.
"""

from __future__ import annotations

import re

from service.errors import InvalidQuery

# JSON Schema (ECMA-262) \s, spelled out so Python and the documented pattern agree exactly.
_BLANK = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_CONTROL = "\u0000-\u001f\u007f-\u009f"
SCHEMA_PATTERN = f"[^{_BLANK}{_CONTROL}]"
_MEANINGFUL = re.compile(SCHEMA_PATTERN)
_EDGES = re.compile(f"^[{_BLANK}{_CONTROL}]+|[{_BLANK}{_CONTROL}]+$")


def checked_query(text: str, max_chars: int, *, field: str = "query") -> str:
    """The text without surrounding blanks, or InvalidQuery naming what is wrong with it."""
    if not _MEANINGFUL.search(text):
        raise InvalidQuery(f"{field} is empty or only whitespace", field=field)
    stripped = _EDGES.sub("", text)
    if len(stripped) > max_chars:
        raise InvalidQuery(
            f"{field} is {len(stripped)} characters; the limit is {max_chars}",
            field=field,
            limit=max_chars,
        )
    return stripped


def is_meaningful(text: str) -> bool:
    """True when `text` holds a character that is neither blank nor a control character."""
    return bool(_MEANINGFUL.search(text))


def routed_text(text: str, max_chars: int) -> str:
    """What the router reads of a message: stripped, then cut to `max_chars` (in that order, so
    leading blanks never push the words out)."""
    return _EDGES.sub("", text)[:max_chars]
