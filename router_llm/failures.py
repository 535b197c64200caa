"""What went wrong with one call to a model, in words safe to show callers."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import openai

from router_llm.redaction import Redactor

AttemptKind = Literal["unavailable", "timeout", "error"]
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_MAX_DETAIL = 200


class EmptyReply(Exception):
    """The endpoint answered without any choice."""


class NotAStream(Exception):
    """A streamed request was answered with something other than an event stream."""


@dataclass(frozen=True)
class Attempt:
    """One failed try of one model (or an agent skipped as unavailable)."""

    agent: str
    model: str
    kind: AttemptKind
    error: str
    status: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for problem details."""
        out: dict[str, Any] = {
            "agent": self.agent,
            "model": self.model,
            "kind": self.kind,
            "error": self.error,
        }
        if self.status is not None:
            out["status"] = self.status
        return out


@dataclass(frozen=True)
class Failure:
    """A classified exception: whether retrying the same model may help."""

    kind: AttemptKind
    reason: str
    retryable: bool
    status: int | None = None
    retry_after: float | None = None


def _short(redact: Redactor, text: str) -> str:
    """At most `_MAX_DETAIL` characters of `text`, masked first (a key cut in two by the limit
    would no longer match its mask); bounded work whatever the size of `text`."""
    return redact.excerpt(text, _MAX_DETAIL)


def _status_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        return str(err)
    if body is not None:
        return str(body)
    return exc.response.reason_phrase or ""


def _retry_after(exc: openai.APIStatusError) -> float | None:
    return retry_after_seconds(exc.response.headers)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a server asks us to wait: `retry-after-ms` (OpenAI's), else `Retry-After` as
    seconds or as an HTTP date; None when absent or unreadable."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def classify_failure(exc: BaseException, timeout_s: float, redact: Redactor) -> Failure:
    """Name what went wrong; timeouts, connection errors, 5xx, 408, 409 and 429 are retryable."""
    if isinstance(exc, TimeoutError | openai.APITimeoutError):
        return Failure("timeout", f"timed out after {timeout_s:g}s", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _short(redact, _status_detail(exc))
        return Failure(
            "error",
            f"HTTP {status}" + (f": {detail}" if detail else ""),
            retryable=status >= 500 or status in _RETRYABLE_STATUS,
            status=status,
            retry_after=_retry_after(exc),
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else exc.message
        return Failure("error", _short(redact, f"connection failed ({detail})"), retryable=True)
    if isinstance(exc, openai.APIResponseValidationError | EmptyReply | NotAStream):
        return Failure("error", _short(redact, f"invalid response: {exc}"), retryable=False)
    if isinstance(exc, openai.APIError):  # e.g. an error event inside a stream
        return Failure("error", _short(redact, f"upstream error: {exc.message}"), retryable=True)
    return Failure("error", _short(redact, f"unexpected {type(exc).__name__}: {exc}"), retryable=False)
