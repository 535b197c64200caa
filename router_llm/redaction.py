"""Keep API keys out of responses, logs and errors.

Mask first, cut afterwards: text shortened before masking may hold a piece of a key that no
longer matches it.
"""

from __future__ import annotations

import re

MASK = "***"
_MIN_SECRET = 4
_PATTERNS = (
    # A bearer token; a Basic credential (base64 of user:password, so at least 8 characters:
    # "a basic error" stays readable).
    re.compile(r"(?i)\b(bearer\s+|basic\s+(?=[A-Za-z0-9+/]{6,}=*))[^\s\"',;}]+"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/\s@]+@"),  # user:password@ in a URL
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
