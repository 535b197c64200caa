"""What a route file may ask for: which key variables it may name, which LLM hosts it may call,
how large it may be.

Route files are data written by route authors, not by the operator: an agent's `api_key_env`
decides which process secret is sent, and its `base_url` where to. The operator bounds both
(`ROUTER_ROUTE_FILES__*`); the router's own settings (`ROUTER_*`, `QDRANT_*`) can never be named.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_KEY_ENVS = ("*_API_KEY",)
# Read by the router itself as settings: never a route file's to send anywhere.
_RESERVED_PREFIXES = ("ROUTER_", "QDRANT_")


@dataclass(frozen=True)
class RoutePolicy:
    """The operator's bounds on route files (defaults: `RouteFileSettings`)."""

    key_envs: tuple[str, ...] = DEFAULT_KEY_ENVS  # glob patterns, matched case-sensitively
    llm_hosts: tuple[str, ...] = ()  # glob patterns of `host` or `host:port`; empty: any host
    max_file_bytes: int = 1_000_000
    max_examples: int = 100_000

    def key_env_problem(self, name: str) -> str | None:
        """Why a route file may not name the variable `name`, or None when it may."""
        if name.upper().startswith(_RESERVED_PREFIXES):
            return f"{name} is one of the router's own settings; a route file may not send it anywhere"
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.key_envs):
            allowed = ", ".join(self.key_envs) or "none"
            return f"{name} is not an allowed key variable (allowed: {allowed}; set ROUTER_ROUTE_FILES__KEY_ENVS)"
        return None

    def base_url_problem(self, url: str) -> str | None:
        """Why a route file may not send calls to `url`, or None when it may."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return "not a valid URL"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "must be an http:// or https:// URL with a host"
        if parts.username is not None or parts.password is not None:
            return "must not carry credentials (user:password@); name the key's variable in api_key_env"
        if not self.llm_hosts:
            return None
        host = parts.hostname.lower()
        names = (host, f"{host}:{port}") if port is not None else (host,)
        if any(fnmatch.fnmatchcase(n, p.lower()) for n in names for p in self.llm_hosts):
            return None
        allowed = ", ".join(self.llm_hosts)
        return f"host {host} is not an allowed LLM host (allowed: {allowed}; set ROUTER_ROUTE_FILES__LLM_HOSTS)"
