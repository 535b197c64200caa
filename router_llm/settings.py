"""Settings of the LLM endpoints the router calls: the agents' default endpoint and retries."""

from __future__ import annotations

from pydantic import Field

from router_core.settings import SettingsSection


class LLMSettings(SettingsSection):
    """Where LLM agents send chat completions, and how failed calls are retried.

    An agent's own `base_url` / `api_key_env` win over these defaults. Keys are read from the
    named environment variables once, at start-up, and never logged or returned.
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
