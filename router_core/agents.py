"""Agent specifications as written in routes files: how a route answers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """Route-file models: unknown keys are errors, values never change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LLMAgent(StrictModel):
    """An agent that answers through an OpenAI-compatible chat completions endpoint."""

    kind: Literal["llm"] = "llm"
    name: str = Field(min_length=1, max_length=100)
    model: str = Field(min_length=1)
    system_prompt: str = ""
    temperature: float = Field(default=0.3, ge=0.0, le=2.0)
    max_tokens: int = Field(default=800, ge=1, le=100_000)
    timeout_s: float = Field(default=30.0, gt=0.0, le=600.0)
    retries: int = Field(default=2, ge=0, le=10)
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint; unset means the router's default."
    )
    api_key_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable holding the key (never the key itself).",
    )
    fallback_models: tuple[str, ...] = ()


class CannedAgent(StrictModel):
    """An agent that answers with a fixed reply and needs no LLM."""

    kind: Literal["canned"] = "canned"
    name: str = Field(min_length=1, max_length=100)
    reply: str = Field(min_length=1)


AgentSpec = Annotated[LLMAgent | CannedAgent, Field(discriminator="kind")]


def public_view(agent: LLMAgent | CannedAgent) -> dict[str, object]:
    """What an agent may show to API callers: its name, kind and model, never key settings."""
    view: dict[str, object] = {"name": agent.name, "kind": agent.kind}
    if isinstance(agent, LLMAgent):
        view["model"] = agent.model
    return view
