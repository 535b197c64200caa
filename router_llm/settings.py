"""Settings of the LLM endpoints the router calls: the agents' default endpoint and retries."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from router_core.settings import SettingsSection


def check_base_url(url: str | None) -> str | None:
    """An http(s) URL without user:password@ (sent as Basic auth instead of the key, and
    printed in request logs); ValueError naming the problem, never the value."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (parsing the port validates it)
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "must not carry credentials (user:password@): put the key in the variable its api_key_env names"
        )
    return url


class LLMSettings(SettingsSection):
    """Where LLM agents send chat completions, and how failed calls are retried.

    An agent's own `base_url` / `api_key_env` win over these defaults. Keys are read from the
    named environment variables when an endpoint is first used (the clients are then reused), and
    never logged or returned.
    """

    base_url: str | None = Field(
        default=None,
        description=(
            "Default OpenAI-compatible endpoint (e.g. http://localhost:11434/v1). Unset: "
            "https://api.openai.com/v1 when the key variable is set, else LLM agents are "
            "unavailable and the default agent answers."
        ),
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable holding the default endpoint's key.",
    )
    backoff_initial_s: float = Field(default=0.5, ge=0.0, description="Delay before the first retry.")
    backoff_multiplier: float = Field(default=2.0, ge=1.0, description="Growth of the delay per retry.")
    backoff_max_s: float = Field(default=8.0, ge=0.0, description="Longest delay between retries.")
    backoff_jitter: float = Field(
        default=0.2, ge=0.0, le=1.0, description="Random spread of each delay, as a fraction."
    )
    deadline_s: float = Field(
        default=120.0, gt=0.0, description="Time budget of one answer across retries and fallbacks."
    )
    stream_usage: bool = Field(default=True, description="Ask upstream streams for token usage (stream_options).")

    _base_url = field_validator("base_url")(check_base_url)


class DeciderSettings(SettingsSection):
    """The decision model of modes llm and hybrid (`ROUTER_DECIDER__*`).

    Its endpoint and key resolve like an agent's: unset `base_url` means the default endpoint
    (`ROUTER_LLM__BASE_URL`, else OpenAI when the key is set). Without `model`, LLM decisions
    are unavailable: mode llm routes to the default route (reason llm_failed) and hybrid keeps
    the vote's decisions.
    """

    model: str | None = Field(default=None, description="Decision model name, e.g. gpt-4o-mini.")
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint of the decision model.")
    api_key_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the variable holding its key (unset: the default endpoint's).",
    )
    timeout_s: float = Field(default=0.8, gt=0.0, le=60.0, description="Deadline of one decision, retries included.")
    retries: int = Field(default=1, ge=0, le=5, description="Retries within the deadline.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=20, ge=1, le=1000, description="The answer is one short JSON object.")
    structured_output: Literal["auto", "json_schema", "json_object", "off"] = Field(
        default="auto",
        description="How the answer's JSON schema (the route names as an enum) is sent. auto: response_format "
        "json_schema, then json_object with the schema (llama.cpp), then the plain prompt (strictly parsed), "
        "stepping down whenever the endpoint refuses response_format, whatever the HTTP status; json_schema or "
        "json_object: that one only; off: the plain prompt.",
    )
    structured_output_ttl_s: float = Field(
        default=600.0,
        gt=0.0,
        le=86_400.0,
        description="auto: how long the mode an endpoint fell back to is remembered before json_schema is tried again.",
    )
    cache_size: int = Field(default=10_000, ge=0, description="LLM decisions remembered (0: no cache).")

    _base_url = field_validator("base_url")(check_base_url)
