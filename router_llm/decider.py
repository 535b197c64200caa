"""Ask the decision model which route a message belongs to (modes llm and hybrid).

One call per question, retried (with the agents' backoff and failure rules) only while the
deadline allows; the answer is read strictly (`router_core.llm_routing.read_choice`). The
structured output is negotiated per endpoint (`router_llm.structured_output`): a refusal of
`response_format` steps down to the next mode without using a retry. Failures come back as an
outcome with a reason safe to show (keys masked), never as an exception; what the model did
last is kept for operators (`status`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from openai import AsyncOpenAI

from router_core import LLMAgent, RouteChoice, read_choice
from router_llm.backoff import Backoff
from router_llm.clients import ClientRegistry
from router_llm.completions import NOT_JSON, InvalidCompletion, completion_text
from router_llm.endpoints import Unavailable, display_url
from router_llm.failures import Failure, classify_failure
from router_llm.settings import DeciderSettings, LLMSettings
from router_llm.structured_output import ModeStatus, OutputMode, OutputModes, refuses_format, response_format

log = logging.getLogger("router.decider")
Outcome = Literal["chosen", "none", "unrecognised", "timeout", "error", "unavailable"]
_NOT_CONFIGURED = "no decision model configured (ROUTER_DECIDER__MODEL)"


@dataclass(frozen=True)
class Asked:
    """What one question to the decision model gave."""

    outcome: Outcome
    choice: RouteChoice | None  # None when the call failed
    seconds: float
    model: str
    detail: str = ""  # why it failed, keys masked
    prompt_tokens: int = 0
    completion_tokens: int = 0
    output_mode: OutputMode | None = None  # the structured output of the last call made

    @property
    def real(self) -> bool:
        """The model named a route or "none": the only answers worth remembering. A failure or
        an unrecognised answer (a proxy's page, a garbled reply) may well differ on the next call."""
        return self.outcome in ("chosen", "none")


@dataclass(frozen=True)
class DeciderStatus:
    """The decision model as operators see it: where it is, how it is asked, how it did last."""

    model: str | None
    endpoint: str | None  # credentials stripped
    unavailable: str | None  # why it cannot be asked, None when it can
    output: ModeStatus | None
    last_outcome: Outcome | None
    last_error: str | None  # masked
    last_error_age_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = self.output
        return {
            "model": self.model,
            "endpoint": self.endpoint,
            "unavailable": self.unavailable,
            "structured_output": out.setting if out else None,
            "output_mode": out.mode if out else None,
            "output_mode_confirmed": out.confirmed if out else False,
            "output_mode_refused": (out.refused or None) if out else None,
            "reprobe_in_s": out.reprobe_in_s if out else None,
            "last_outcome": self.last_outcome,
            "last_error": self.last_error,
            "last_error_age_s": self.last_error_age_s,
        }


def _outcome(choice: RouteChoice) -> Outcome:
    if not choice.recognised:
        return "unrecognised"
    return "none" if choice.route is None else "chosen"


class Decider:
    """The decision model behind one endpoint (resolved like an agent's)."""

    def __init__(self, settings: DeciderSettings, llm: LLMSettings, clients: ClientRegistry) -> None:
        self._settings = settings
        self._clients = clients
        self._backoff = Backoff.from_settings(llm)
        self._modes = OutputModes(settings.structured_output, settings.structured_output_ttl_s)
        self._last_outcome: Outcome | None = None
        self._last_error: tuple[str, float] | None = None  # (detail, monotonic time)
        self._agent = (
            LLMAgent(
                name="decision-model",
                model=settings.model,
                base_url=settings.base_url,
                api_key_env=settings.api_key_env,
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
                timeout_s=settings.timeout_s,
                retries=settings.retries,
            )
            if settings.model
            else None
        )

    @property
    def model(self) -> str:
        """The decision model's name ("" when none is configured)."""
        return self._settings.model or ""

    @property
    def available(self) -> str | None:
        """None when the model can be asked, else why not."""
        if self._agent is None:
            return _NOT_CONFIGURED
        found = self._clients.lookup(self._agent, from_route_file=False)
        return found.reason if isinstance(found, Unavailable) else None

    def status(self) -> DeciderStatus:
        """Where the model is, the structured output it is asked in and how its last call went."""
        error, age = None, None
        if self._last_error is not None:
            error, at = self._last_error
            age = round(time.monotonic() - at, 1)
        if self._agent is None:
            return DeciderStatus(None, None, _NOT_CONFIGURED, None, self._last_outcome, error, age)
        found = self._clients.lookup(self._agent, from_route_file=False)
        if isinstance(found, Unavailable):
            return DeciderStatus(self.model, None, found.reason, None, self._last_outcome, error, age)
        where = self._where(found.endpoint.base_url)
        output = self._modes.status(where)
        endpoint = display_url(found.endpoint.base_url)
        return DeciderStatus(self.model, endpoint, None, output, self._last_outcome, error, age)

    def _where(self, base_url: str) -> str:
        """What structured output is remembered per: the endpoint and the model."""
        return f"{base_url} {self.model}"

    async def ask(self, messages: Sequence[dict[str, str]], allowed: Sequence[str]) -> Asked:
        """The model's choice among `allowed` (or "none") for the routed message in `messages`."""
        if self._agent is None:
            return self._remember(Asked("unavailable", None, 0.0, "", _NOT_CONFIGURED))
        found = self._clients.lookup(self._agent, from_route_file=False)
        if isinstance(found, Unavailable):
            return self._remember(Asked("unavailable", None, 0.0, self.model, found.reason))
        asked = await self._ask(found.client, self._where(found.endpoint.base_url), messages, allowed)
        return self._remember(asked)

    def _remember(self, asked: Asked) -> Asked:
        self._last_outcome = asked.outcome
        if asked.detail:
            self._last_error = (asked.detail, time.monotonic())
        return asked

    async def _ask(
        self, client: AsyncOpenAI, where: str, messages: Sequence[dict[str, str]], allowed: Sequence[str]
    ) -> Asked:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        timeout_s = self._settings.timeout_s
        deadline = loop.time() + timeout_s
        mode = self._modes.mode_for(where)
        retry, detail = 0, ""
        while (remaining := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    response = await client.chat.completions.create(**self._request(messages, allowed, mode))
            except json.JSONDecodeError:  # the client parses a body sent as JSON that is not
                detail = f"invalid response: {NOT_JSON}"
                return Asked("error", None, time.perf_counter() - started, self.model, detail, output_mode=mode)
            except Exception as exc:
                failure = classify_failure(exc, timeout_s, self._clients.redact)
                if mode != "plain" and refuses_format(exc):
                    following = self._modes.step_down(where, mode, failure.reason)
                    if following is not None:
                        log.warning(
                            "decision endpoint refused response_format %s (%s): asking in %s",
                            mode,
                            failure.reason,
                            following,
                        )
                        mode = following
                        continue
                    failure = _refused_by_setting(failure, mode, self._settings.structured_output)
                detail = _with_hint(failure.reason) if failure.kind == "timeout" else failure.reason
                if not failure.retryable or retry >= self._settings.retries:
                    kind: Outcome = "timeout" if failure.kind == "timeout" else "error"
                    return Asked(kind, None, time.perf_counter() - started, self.model, detail, output_mode=mode)
                retry += 1
                wait = self._backoff.delay(retry, retry_after=failure.retry_after)
                await asyncio.sleep(max(0.0, min(wait, deadline - loop.time())))
                continue
            asked = self._read(response, allowed, mode, started)
            if asked.outcome != "error":
                self._modes.answered(where, mode)
            return asked
        reason = detail or _with_hint(f"no answer within {timeout_s:g}s")
        return Asked("timeout", None, time.perf_counter() - started, self.model, reason, output_mode=mode)

    def _read(self, response: object, allowed: Sequence[str], mode: OutputMode, started: float) -> Asked:
        """The answer in `response`; an error outcome when it holds no chat completion."""
        seconds = time.perf_counter() - started
        try:
            text, prompt_tokens, completion_tokens = completion_text(response)
        except InvalidCompletion as exc:
            detail = f"invalid response: {exc}"
            return Asked("error", None, seconds, self.model, detail, output_mode=mode)
        choice = read_choice(text, allowed)
        return Asked(_outcome(choice), choice, seconds, self.model, "", prompt_tokens, completion_tokens, mode)

    def _request(self, messages: Sequence[dict[str, str]], allowed: Sequence[str], mode: OutputMode) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": self._settings.temperature,
            "max_tokens": self._settings.max_tokens,
        }
        fmt = response_format(mode, allowed)
        if fmt is not None:
            request["response_format"] = fmt
        return request


def _refused_by_setting(failure: Failure, mode: OutputMode, setting: str) -> Failure:
    """A refusal of the format a fixed setting asks for: no use retrying it."""
    hint = f"the endpoint refuses response_format {mode} (ROUTER_DECIDER__STRUCTURED_OUTPUT={setting}; auto falls back)"
    return replace(failure, reason=f"{failure.reason} [{hint}]", retryable=False)


def _with_hint(reason: str) -> str:
    """A timeout's reason, naming the setting: a local model on a CPU needs seconds per call."""
    return f"{reason} (ROUTER_DECIDER__TIMEOUT_S)"
