"""Read a chat completion as the `openai` client hands it back, trusting nothing of its shape.

The client returns the body's text when a server answers 200 with something that is not JSON (a
proxy's HTML page), and builds its response objects without validation, so a JSON body of
another shape arrives as an object with missing or mistyped fields. Both are an
`InvalidCompletion` here, named without echoing the body.
"""

from __future__ import annotations

NOT_JSON = "HTTP 200 with a body that is not JSON (a proxy's or gateway's page?)"


class InvalidCompletion(Exception):
    """The endpoint answered without a readable chat completion."""


def _tokens(usage: object, name: str) -> int:
    value = getattr(usage, name, 0)
    return value if isinstance(value, int) and value >= 0 else 0


def completion_text(response: object) -> tuple[str, int, int]:
    """The first choice's text and the (prompt, completion) token counts of `response`."""
    if isinstance(response, str | bytes):
        raise InvalidCompletion(NOT_JSON)
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list):
        raise InvalidCompletion("HTTP 200 with JSON that is not a chat completion (no choices list)")
    if not choices:
        raise InvalidCompletion("the response holds no choices")
    message = getattr(choices[0], "message", None)
    if message is None:
        raise InvalidCompletion("HTTP 200 with a choice that holds no message")
    content = getattr(message, "content", None)
    if content is not None and not isinstance(content, str):
        raise InvalidCompletion("HTTP 200 with a choice whose message content is not text")
    usage = getattr(response, "usage", None)
    return content or "", _tokens(usage, "prompt_tokens"), _tokens(usage, "completion_tokens")
