"""The request class of the app: JSON nested too deeply to decode is a 400, not a 500.

msgspec decodes recursively and raises RecursionError past Python's recursion limit (a body of
a few kilobytes of `[[[[...`); that is the client's error, said in a problem like any other
malformed JSON.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ClientException


class JSONRequest(Request[Any, Any, Any]):
    """Litestar's Request, with nesting too deep to decode reported as malformed JSON."""

    async def json(self) -> Any:
        """The decoded body; ClientException (400) when it is nested too deeply to decode."""
        try:
            return await super().json()
        except RecursionError:
            raise ClientException("it is nested too deeply to decode") from None
