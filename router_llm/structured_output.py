"""How the decision model is asked for its JSON answer, negotiated per endpoint.

Servers differ in the structured output they take. OpenAI and vLLM take `response_format`
`json_schema`; llama.cpp's servers take `{"type": "json_object", "schema": {...}}` (and
llama-cpp-python's answers a json_schema request with HTTP 500 wrapping a validation error);
LM Studio takes json_schema but no json_object; some gateways take neither. So, with
`structured_output: auto`, a call goes down the ladder json_schema -> json_object with the schema
-> plain prompt on every refusal naming `response_format` (whatever its HTTP status), and the
mode that works is remembered per endpoint and model for `ttl_s`; json_schema is tried again
after that (a server upgrade, a proxy fixed). A fixed setting never steps down: a refusal is
then an error naming the setting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import openai

from router_core import answer_schema

OutputMode = Literal["json_schema", "json_object", "plain"]
Setting = Literal["auto", "json_schema", "json_object", "off"]
LADDER: tuple[OutputMode, ...] = ("json_schema", "json_object", "plain")

# Statuses that say nothing about the request's shape: a message naming response_format in them
# (e.g. a rate limit quoting the request) is not a refusal of the format.
_NOT_REFUSALS = frozenset({401, 403, 404, 408, 409, 429})
# What a refusal of the format names, lower case: the parameter, or the format types themselves.
_REFUSAL_WORDS = ("response_format", "json_schema", "json_object", "structured output")
# Only the start of an error text is read: it is untrusted and may be huge.
_READ_CHARS = 4_000


def response_format(mode: OutputMode, allowed: Sequence[str]) -> dict[str, Any] | None:
    """The `response_format` of a call in `mode` (None: the plain prompt, no response_format)."""
    schema = answer_schema(allowed)
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": schema}
    if mode == "json_object":
        return {"type": "json_object", "schema": schema["schema"]}
    return None


def _error_text(exc: openai.APIStatusError) -> str:
    body = exc.body
    text = body if isinstance(body, str) else repr(body) if body is not None else ""
    return (text[:_READ_CHARS] + " " + exc.message[:_READ_CHARS]).lower()


def refuses_format(exc: BaseException) -> bool:
    """`exc` is an endpoint refusing the request's `response_format`: an HTTP error (400, 422,
    500...) whose message names response_format, json_schema or json_object."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code in _NOT_REFUSALS:
        return False
    text = _error_text(exc)
    return any(word in text for word in _REFUSAL_WORDS)


@dataclass(frozen=True)
class Learned:
    """What is known of one endpoint's structured output."""

    mode: OutputMode  # the mode calls use now
    confirmed: bool  # a call in this mode was answered
    since: float  # monotonic time this mode was learned
    refused: str = ""  # why the better modes are not used (the refusal, masked), "" when none was


@dataclass(frozen=True)
class ModeStatus:
    """The structured output of one endpoint, for operators."""

    setting: Setting
    mode: OutputMode | None  # None: not asked yet (auto)
    confirmed: bool
    refused: str
    reprobe_in_s: float | None  # auto, after a refusal: when json_schema is tried again


class OutputModes:
    """The structured output each endpoint (and model) is asked in, per the setting."""

    def __init__(self, setting: Setting, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.setting = setting
        self._ttl_s = ttl_s
        self._clock = clock
        self._learned: dict[str, Learned] = {}

    def _fixed(self) -> OutputMode | None:
        if self.setting == "auto":
            return None
        return "plain" if self.setting == "off" else self.setting

    def _fresh(self, where: str) -> Learned | None:
        learned = self._learned.get(where)
        if learned is None:
            return None
        if learned.mode != LADDER[0] and self._clock() - learned.since >= self._ttl_s:
            return None  # a fallback remembered long enough: probe json_schema again
        return learned

    def mode_for(self, where: str) -> OutputMode:
        """The mode the next call to `where` starts with."""
        fixed = self._fixed()
        if fixed is not None:
            return fixed
        learned = self._fresh(where)
        return learned.mode if learned is not None else LADDER[0]

    def step_down(self, where: str, refused_mode: OutputMode, reason: str) -> OutputMode | None:
        """`where` refused `refused_mode`: the mode to try next, remembered (None: none is left,
        or the setting is fixed)."""
        if self._fixed() is not None or refused_mode == LADDER[-1]:
            return None
        following = LADDER[LADDER.index(refused_mode) + 1]
        learned = self._fresh(where)
        if learned is not None and LADDER.index(learned.mode) > LADDER.index(following):
            return learned.mode  # a concurrent call already went further down
        self._learned[where] = Learned(following, False, self._clock(), f"{refused_mode} refused: {reason}")
        return following

    def answered(self, where: str, mode: OutputMode) -> None:
        """A call to `where` in `mode` was answered."""
        learned = self._learned.get(where)
        if mode == LADDER[0] or learned is None or learned.mode != mode:
            learned = Learned(mode, True, self._clock())
        elif not learned.confirmed:
            learned = Learned(mode, True, learned.since, learned.refused)
        self._learned[where] = learned

    def status(self, where: str) -> ModeStatus:
        """What `where` is asked in now, and why."""
        fixed = self._fixed()
        learned = self._learned.get(where)
        if fixed is not None:
            confirmed = learned is not None and learned.mode == fixed and learned.confirmed
            return ModeStatus(self.setting, fixed, confirmed, "", None)
        fresh = self._fresh(where)
        if fresh is None:
            return ModeStatus(self.setting, None, False, learned.refused if learned else "", None)
        reprobe = None
        if fresh.mode != LADDER[0]:
            reprobe = round(max(0.0, self._ttl_s - (self._clock() - fresh.since)), 1)
        return ModeStatus(self.setting, fresh.mode, fresh.confirmed, fresh.refused, reprobe)
