"""Agents behind the router: OpenAI-compatible clients, answering with retries and fallbacks.

Built on the route table's agent specs (router_core.agents); the only package that talks to
LLM endpoints.
"""

from service.agents.answering import Answerer
from service.agents.clients import ClientRegistry, Connection
from service.agents.conversation import ChatMessage, Conversation, build_conversation
from service.agents.endpoints import Endpoint, EndpointRef, Unavailable, endpoint_ref, resolve
from service.agents.failures import Attempt
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
