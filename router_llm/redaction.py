"""Keep API keys out of responses, logs and errors.

Mask first, cut afterwards: text shortened before masking may hold a piece of a key that no
longer matches it. `Redactor.excerpt` reads a bounded prefix of a text of any size (an upstream
error body may be megabytes), masks it, and drops the end of that prefix where a key cut in two
could sit, so its work is bounded whatever the input, and nothing of a key shows.

Every pattern runs in time linear in the text: a URL scheme is at most 32 characters (an
unbounded `[a-z][a-z0-9+.-]*://` backtracked over `a.a.a.a...`: 30,000 characters took 106 s).
"""

from __future__ import annotations

import re

MASK = "***"
_MIN_SECRET = 4
SCAN_CHARS = 8192
"""The most characters of a text `excerpt` reads."""
_REACH = 512
"""At least this much of the end of a cut prefix is dropped: a key-like token cut in two there
(a bearer token, `user:password@`) would no longer match its pattern."""
_PATTERNS = (
    # A bearer token; a Basic credential (base64 of user:password, so at least 8 characters:
    # "a basic error" stays readable).
    re.compile(r"(?i)\b(bearer\s+|basic\s+(?=[A-Za-z0-9+/]{6,}=*))[^\s\"',;}]+"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]{0,31}://)[^/\s@]+@"),  # user:password@ in a URL
)


class Redactor:
    """Masks every key it was told about, plus anything shaped like a bearer token or key."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, secret: str) -> None:
        """Remember a secret value to mask from now on."""
        if len(secret) >= _MIN_SECRET:
            self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        """`text` with every known secret and key-like token masked."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        text = _PATTERNS[0].sub(lambda m: m.group(1) + MASK, text)
        text = _PATTERNS[1].sub("sk-" + MASK, text)
        return _PATTERNS[2].sub(lambda m: m.group(1) + MASK + "@", text)

    def excerpt(self, text: str, limit: int) -> str:
        """At most `limit` characters of `text`, masked, with runs of whitespace as one space.

        Reads at most `SCAN_CHARS` characters of it; when `text` is longer, the end of what was
        read is dropped too (where a key cut in two could sit) and the excerpt ends with "...".
        """
        head = text[:SCAN_CHARS]
        cut = len(text) > len(head)
        shown = " ".join(self(head).split())
        if cut:
            reach = max(_REACH, max((len(s) for s in self._secrets), default=0) + 16)
            shown = shown[: max(0, len(shown) - reach)].rstrip() + "..."
        return shown if len(shown) <= limit else shown[: limit - 3] + "..."
