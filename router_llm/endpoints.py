"""Which OpenAI-compatible endpoint, and which key, an LLM agent's calls go to.

An agent's own `base_url` and `api_key_env` win over the router defaults (`settings.llm`).
The router's default key is only ever sent to the default endpoint: an agent naming another
`base_url` gets a key only from its own `api_key_env`. With no base URL anywhere the calls go
to api.openai.com, but only when a key is set; with neither, the agent is unavailable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from router_core import LLMAgent
from router_llm.settings import LLMSettings

OPENAI_BASE_URL = "https://api.openai.com/v1"
_USERINFO = re.compile(r"//[^/@?#]*@")


@dataclass(frozen=True)
class EndpointRef:
    """An endpoint as configured: base URL (None = default) and the key variable's name."""

    base_url: str | None
    key_env: str | None


@dataclass(frozen=True)
class Endpoint:
    """A usable endpoint with its key (SecretStr: masked in repr and str)."""

    base_url: str
    key_env: str | None
    api_key: SecretStr | None

    @property
    def identity(self) -> tuple[str, str | None]:
        """What makes two endpoints share one client."""
        return (self.base_url, self.key_env)


@dataclass(frozen=True)
class Unavailable:
    """Why an agent's endpoint cannot be used."""

    reason: str


def display_url(url: str) -> str:
    """`url` without any user:password part, for logs and messages."""
    return _USERINFO.sub("//***@", url)


def _same_url(a: str | None, b: str | None) -> bool:
    return (a or "").rstrip("/") == (b or "").rstrip("/")


def endpoint_ref(agent: LLMAgent, llm: LLMSettings) -> EndpointRef:
    """Where `agent` is configured to send its calls."""
    if agent.base_url is not None and not _same_url(agent.base_url, llm.base_url):
        return EndpointRef(agent.base_url.rstrip("/"), agent.api_key_env)
    base = llm.base_url.rstrip("/") if llm.base_url else None
    return EndpointRef(base, agent.api_key_env or llm.api_key_env)


def resolve(ref: EndpointRef, environ: Mapping[str, str]) -> Endpoint | Unavailable:
    """Read the key named by `ref` from `environ`; Unavailable when nothing is configured."""
    raw = environ.get(ref.key_env, "").strip() if ref.key_env else ""
    key = SecretStr(raw) if raw else None
    if ref.base_url is None:
        if key is None:
            return Unavailable(
                "no LLM endpoint configured (no base_url for the agent or in ROUTER_LLM__BASE_URL, "
                f"and {ref.key_env or 'no key variable'} is not set)"
            )
        return Endpoint(OPENAI_BASE_URL, ref.key_env, key)
    return Endpoint(ref.base_url, ref.key_env, key)
