"""Agents behind the router: answering a routed request with retries and fallbacks.

Built on the route table's agent specs (router_core.agents) and the endpoint, client and
retry layer shared with the indexer (router_llm).
"""

from router_llm.clients import ClientRegistry, Connection
from router_llm.endpoints import Endpoint, EndpointRef, Unavailable, endpoint_ref, resolve
from router_llm.failures import Attempt
from service.agents.answering import Answerer
from service.agents.conversation import ChatMessage, Conversation, build_conversation
from service.agents.outcomes import Answer, AnswerStream, Responder, Usage

__all__ = [
    "Answer",
    "AnswerStream",
    "Answerer",
    "Attempt",
    "ChatMessage",
    "ClientRegistry",
    "Connection",
    "Conversation",
    "Endpoint",
    "EndpointRef",
    "Responder",
    "Unavailable",
    "Usage",
    "build_conversation",
    "endpoint_ref",
    "resolve",
]
