"""What the agents raise: their own errors, not HTTP ones. `service.errors` turns them into
problem-details responses (and stream error events), in the one place errors meet HTTP."""

from __future__ import annotations

from typing import Any


class AgentError(Exception):
    """An error of the answering layer; `extra` names what it concerns (a field, a route)."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class MessagesRefused(AgentError):
    """Chat messages that cannot be routed or answered as sent (the caller's mistake)."""


class ParameterRefused(AgentError):
    """A chat parameter the route's agent cannot honour (the caller's choice)."""


class NoAnswer(AgentError):
    """No agent could answer: every model tried failed, or was unavailable."""

    def __init__(self, detail: str, *, timed_out: bool, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.timed_out = timed_out  # every model that was reached timed out
