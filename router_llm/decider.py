"""Ask the decision model which route a message belongs to (modes llm and hybrid).

One call per question, retried (with the agents' backoff and failure rules) only while the
deadline allows; the answer is read strictly (`router_core.llm_routing.read_choice`). Failures
come back as an outcome with a reason safe to show (keys masked), never as an exception.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import openai

from router_core import LLMAgent, RouteChoice, answer_schema, read_choice
from router_llm.backoff import Backoff
from router_llm.clients import ClientRegistry
from router_llm.endpoints import Unavailable
from router_llm.failures import EmptyReply, classify_failure
from router_llm.settings import DeciderSettings, LLMSettings

log = logging.getLogger("router.decider")
Outcome = Literal["chosen", "none", "unrecognised", "timeout", "error", "unavailable"]


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


def _outcome(choice: RouteChoice) -> Outcome:
    if not choice.recognised:
        return "unrecognised"
    return "none" if choice.route is None else "chosen"


def _refuses_schema(exc: BaseException) -> bool:
    """An endpoint saying it does not support `response_format` json_schema."""
    if not isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError):
        return False
    text = str(exc).lower()
    return "response_format" in text or "json_schema" in text or "schema" in text


class Decider:
    """The decision model behind one endpoint (resolved like an agent's)."""

    def __init__(self, settings: DeciderSettings, llm: LLMSettings, clients: ClientRegistry) -> None:
        self._settings = settings
        self._clients = clients
        self._backoff = Backoff.from_settings(llm)
        self._structured = settings.structured_output != "off"
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
            return "no decision model configured (ROUTER_DECIDER__MODEL)"
        found = self._clients.lookup(self._agent, from_route_file=False)
        return found.reason if isinstance(found, Unavailable) else None

    async def ask(self, messages: Sequence[dict[str, str]], allowed: Sequence[str]) -> Asked:
        """The model's choice among `allowed` (or "none") for the routed message in `messages`."""
        started = time.perf_counter()
        if self._agent is None:
            return Asked("unavailable", None, 0.0, "", "no decision model configured (ROUTER_DECIDER__MODEL)")
        found = self._clients.lookup(self._agent, from_route_file=False)
        if isinstance(found, Unavailable):
            return Asked("unavailable", None, 0.0, self.model, found.reason)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.timeout_s
        detail = ""
        for attempt in range(1 + self._settings.retries):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    response = await found.client.chat.completions.create(**self._request(messages, allowed))
            except Exception as exc:
                if self._structured and self._settings.structured_output == "auto" and _refuses_schema(exc):
                    log.info("decision endpoint refuses json_schema output: using the plain prompt from now on")
                    self._structured = False
                    continue
                failure = classify_failure(exc, self._settings.timeout_s, self._clients.redact)
                detail = failure.reason
                if not failure.retryable or attempt == self._settings.retries:
                    kind: Outcome = "timeout" if failure.kind == "timeout" else "error"
                    return Asked(kind, None, time.perf_counter() - started, self.model, detail)
                wait = self._backoff.delay(attempt + 1, retry_after=failure.retry_after)
                await asyncio.sleep(max(0.0, min(wait, deadline - loop.time())))
                continue
            if not response.choices:
                detail = self._clients.redact(str(EmptyReply("the response holds no choices")))
                return Asked("error", None, time.perf_counter() - started, self.model, detail)
            choice = read_choice(response.choices[0].message.content or "", allowed)
            usage = response.usage
            return Asked(
                _outcome(choice),
                choice,
                time.perf_counter() - started,
                self.model,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
            )
        reason = detail or f"no answer within {self._settings.timeout_s:g}s"
        return Asked("timeout", None, time.perf_counter() - started, self.model, reason)

    def _request(self, messages: Sequence[dict[str, str]], allowed: Sequence[str]) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": self._settings.temperature,
            "max_tokens": self._settings.max_tokens,
        }
        if self._structured:
            request["response_format"] = {"type": "json_schema", "json_schema": answer_schema(allowed)}
        return request
