"""One AsyncOpenAI client per distinct endpoint, created at start-up and reused.

Clients are created for every LLM agent of the live route table when the service starts, and
lazily (then cached) for agents that appear after a live re-index. Keys are read from the
environment once per endpoint, when it is first connected. The clients never retry by themselves: the answerer does,
with the router's backoff.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from openai import AsyncOpenAI

from router_core import LLMAgent, RoutePolicy, RouteTable
from router_llm.endpoints import (
    Endpoint,
    EndpointRef,
    Unavailable,
    display_url,
    endpoint_ref,
    resolve,
)
from router_llm.redaction import Redactor
from router_llm.settings import LLMSettings

log = logging.getLogger("router.agents")

# Sent to endpoints configured without a key (local Ollama, vLLM): the SDK insists on one.
KEYLESS = "unused"


@dataclass(frozen=True)
class Connection:
    """A client and the endpoint it talks to."""

    client: AsyncOpenAI
    endpoint: Endpoint


class ClientRegistry:
    """Resolves each LLM agent to a shared client, or to the reason it has none."""

    def __init__(
        self, llm: LLMSettings, environ: Mapping[str, str] | None = None, policy: RoutePolicy | None = None
    ) -> None:
        self._llm = llm
        self._environ = environ if environ is not None else os.environ
        # Route files were checked against the policy when indexed; checked again here, since
        # an index version on disk may have been written by anyone who can write the data dir.
        self._policy = policy or RoutePolicy()
        self._refs: dict[EndpointRef, Connection | Unavailable] = {}
        self._clients: dict[tuple[str, str | None], Connection] = {}
        self.redact = Redactor()

    def prepare(self, table: RouteTable) -> None:
        """Create the clients of every LLM agent in `table` (start-up, or after a re-index)."""
        for agent in (table.default_agent, *(r.agent for r in table.routes)):
            if isinstance(agent, LLMAgent):
                found = self.lookup(agent)
                if isinstance(found, Unavailable):
                    log.info("agent %s has no LLM endpoint: %s", agent.name, found.reason)

    def lookup(self, agent: LLMAgent, *, from_route_file: bool = True) -> Connection | Unavailable:
        """The connection `agent` uses, created on first use, or why it has none. An agent from
        a route file (not the operator's own settings) may only use what the policy allows."""
        if from_route_file:
            refused = self._refused(agent)
            if refused is not None:
                return refused
        ref = endpoint_ref(agent, self._llm)
        found = self._refs.get(ref)
        if found is None:
            found = self._connect(ref)
            self._refs[ref] = found
        return found

    def _refused(self, agent: LLMAgent) -> Unavailable | None:
        if agent.api_key_env is not None:
            reason = self._policy.key_env_problem(agent.api_key_env)
            if reason:
                return Unavailable(f"agent {agent.name}: api_key_env refused: {reason}")
        if agent.base_url is not None:
            reason = self._policy.base_url_problem(agent.base_url)
            if reason:
                return Unavailable(f"agent {agent.name}: base_url refused: {reason}")
        return None

    def _connect(self, ref: EndpointRef) -> Connection | Unavailable:
        endpoint = resolve(ref, self._environ)
        if isinstance(endpoint, Unavailable):
            return endpoint
        shared = self._clients.get(endpoint.identity)
        if shared is not None:
            return shared
        key = endpoint.api_key.get_secret_value() if endpoint.api_key else KEYLESS
        if endpoint.api_key:
            self.redact.add(key)
        where = display_url(endpoint.base_url)
        try:
            client = AsyncOpenAI(api_key=key, base_url=endpoint.base_url, max_retries=0)
        except Exception as exc:  # e.g. a malformed base_url
            reason = self.redact(f"cannot create a client for {where}: {type(exc).__name__}: {exc}")
            log.warning("%s", reason)
            return Unavailable(reason)
        connection = Connection(client, endpoint)
        self._clients[endpoint.identity] = connection
        log.info(
            "LLM endpoint %s (key from %s)",
            where,
            endpoint.key_env if endpoint.api_key else "nowhere: keyless",
        )
        return connection

    @property
    def endpoints(self) -> list[Endpoint]:
        """The endpoints with a client, in creation order."""
        return [c.endpoint for c in self._clients.values()]

    async def close(self) -> None:
        """Close every client."""
        connections = list(self._clients.values())
        self._clients.clear()
        self._refs.clear()
        for connection in connections:
            await connection.client.close()
