"""Settings of the service process (prefix `ROUTER_`, nested with `__`, `.env` supported)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from router_core.settings import RouterSettings, SettingsSection
from router_llm.settings import DeciderSettings, LLMSettings
from service.security import AuthSettings

MAX_WORKERS = 64


def default_workers() -> int:
    """One worker process per core this process may run on, at most 4."""
    return max(1, min(len(os.sched_getaffinity(0)), 4))


class HttpSettings(SettingsSection):
    """Where the service listens, how many processes serve, and what it accepts of a request head."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(
        default_factory=default_workers,
        ge=1,
        le=MAX_WORKERS,
        description="Worker processes serving requests, each with its own model, all sharing the port and the "
        "embedded index; default: the cores this process may use, at most 4. 1: one process, no supervisor.",
    )
    pin_workers: bool = Field(
        default=False,
        description="Run each worker process on its own share of the cores (and fill its forward passes with "
        "that share of max_micro_batch_chars): faster on a machine the service has to itself, slower beside "
        "other CPU-heavy processes; false: the system schedules every worker on every core.",
    )
    max_header_bytes: int = Field(
        default=32_768, ge=1024, description="Largest request head (request line and headers); larger is 431."
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="Time a client has to send a request head; then 408 and the connection closes."
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Time a client has to send a request body once its head arrived; then 408 and the "
        "connection closes.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header values /v1 and /admin accept when no API key is configured (DNS rebinding); "
        "empty: loopback names only (localhost, 127.0.0.1, [::1]).",
    )


class LimitSettings(SettingsSection):
    """Request limits; exceeding one is a 4xx naming the limit."""

    max_query_chars: int = Field(default=2000, ge=1, description="Longest query accepted.")
    max_batch: int = Field(default=128, ge=1, description="Most queries in one batch request.")
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Largest request body.")
    max_micro_batch: int = Field(
        default=64, ge=1, description="Most queries embedded in one forward pass across requests."
    )
    max_micro_batch_chars: int = Field(
        default=16_000,
        ge=1,
        description="Most characters of text in one forward pass; a batch request beyond it is split "
        "across passes, so single queries ride along instead of waiting for the whole batch.",
    )
    reindex_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="Longest wait for POST /admin/reindex; then 504 and the endpoint is free again.",
    )
    max_messages: int = Field(default=100, ge=1, description="Most chat messages in one answer or chat request.")
    max_conversation_chars: int = Field(
        default=100_000, ge=1, description="Most characters across all messages of one request."
    )
    max_eval_queries: int = Field(
        default=5000, ge=1, description="Most labelled queries in one evaluation request (POST /v1/evaluate)."
    )
    max_eval_file_bytes: int = Field(
        default=10_000_000, ge=1024, description="Largest file of the evals directory an evaluation reads."
    )


class LogSettings(SettingsSection):
    """What the service logs."""

    level: str = Field(default="INFO", pattern=r"^(?i:debug|info|warning|error)$")
    json_format: bool = Field(default=True, description="One JSON object per line.")
    queries: bool = Field(
        default=False, description="Include query text in access logs (off: it may be personal data)."
    )


class ServiceSettings(RouterSettings):
    """Everything the service reads from its environment."""

    http: HttpSettings = HttpSettings()
    limits: LimitSettings = LimitSettings()
    llm: LLMSettings = LLMSettings()
    decider: DeciderSettings = DeciderSettings()
    reload_interval_s: float = Field(default=2.0, gt=0, description="How often the live index pointer is checked.")
    allow_insecure_bind: bool = Field(
        default=False, description="Allow binding a non-loopback address without API keys."
    )
    follow_index_model: bool = Field(
        default=True,
        description="Load the embedding model the live index records (and switch with it); "
        "false: load ROUTER_EMBEDDING__MODEL and refuse indexes built with another model.",
    )
    auth: AuthSettings = AuthSettings()
    evals_dir: Path = Field(
        default=Path("evals"), description="Labelled JSON Lines files the playground and GET /v1/evals offer."
    )
    log: LogSettings = LogSettings()
