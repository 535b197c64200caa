"""The one rule for what counts as a usable query, shared by every endpoint and the schema.

A query must contain at least one character that is neither whitespace (as JSON Schema's
regex `\\s` defines it) nor a control character; surrounding blanks are stripped before the
length limit applies.

Every function here is linear in the text: stripping uses `str.strip` with the explicit set of
blank characters. (A regular expression `[blank]+$` tried at every position of a run of blanks
followed by a word is quadratic: 30,000 blanks between two letters took 19 s on the event loop.)
"""

from __future__ import annotations

import re

from service.errors import InvalidQuery

# JSON Schema (ECMA-262) \s, spelled out so Python and the documented pattern agree exactly.
_BLANK = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_CONTROL = "\u0000-\u001f\u007f-\u009f"
SCHEMA_PATTERN = f"[^{_BLANK}{_CONTROL}]"
_MEANINGFUL = re.compile(SCHEMA_PATTERN)


def _expand(ranges: str) -> str:
    """The characters of a regex character-class body made of single characters and `a-b` ranges."""
    out: list[str] = []
    i = 0
    while i < len(ranges):
        if i + 2 < len(ranges) and ranges[i + 1] == "-":
            out.extend(chr(c) for c in range(ord(ranges[i]), ord(ranges[i + 2]) + 1))
            i += 3
        else:
            out.append(ranges[i])
            i += 1
    return "".join(out)


_EDGE_CHARS = _expand(_BLANK + _CONTROL)


def checked_query(text: str, max_chars: int, *, field: str = "query") -> str:
    """The text without surrounding blanks, or InvalidQuery naming what is wrong with it."""
    stripped = text.strip(_EDGE_CHARS)
    if not stripped:
        raise InvalidQuery(f"{field} is empty or only whitespace", field=field)
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
    return text.strip(_EDGE_CHARS)[:max_chars]
