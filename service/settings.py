"""Settings of the service process (prefix `ROUTER_`, nested with `__`, `.env` supported)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from router_core.settings import IndexSettings


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpSettings(_Section):
    """Where the service listens."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)


class LimitSettings(_Section):
    """Request limits; exceeding one is a 4xx naming the limit."""

    max_query_chars: int = Field(default=2000, ge=1, description="Longest query accepted.")
    max_batch: int = Field(default=128, ge=1, description="Most queries in one batch request.")
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Largest request body.")
    max_micro_batch: int = Field(
        default=64, ge=1, description="Most queries embedded in one forward pass across requests."
    )


class ServiceSettings(IndexSettings):
    """Everything the service reads from its environment."""

    http: HttpSettings = HttpSettings()
    limits: LimitSettings = LimitSettings()
    reload_interval_s: float = Field(
        default=2.0, gt=0, description="How often the live index pointer is checked."
    )
    allow_insecure_bind: bool = Field(
        default=False, description="Allow binding a non-loopback address without API keys."
    )
