"""Errors as HTTP responses: RFC 9457 problem details.

The exception handlers here turn every error a handler raises into a response; an event stream
that fails after its response has started ends with an error event built from the same body
(`problem_body`).
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from router_core import (
    IndexBusy,
    IndexIncompatible,
    IndexMissing,
    ModelUnavailable,
    RouterError,
    RoutesInvalid,
    StoreUnavailable,
)
from service.agents.errors import AgentError, MessagesRefused, NoAnswer, ParameterRefused

log = logging.getLogger("router.errors")
PROBLEM_JSON = "application/problem+json"


class ServiceError(Exception):
    """An error the service raises on purpose, carrying its HTTP status."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class InvalidQuery(ServiceError):
    """The query is empty, blank or too long."""

    status = 400
    title = "Invalid query"


class BatchTooLarge(ServiceError):
    """More queries than one batch may hold."""

    status = 400
    title = "Batch too large"


class InvalidMessages(ServiceError):
    """Chat messages are malformed: unknown role, no user message, too many or too long."""

    status = 400
    title = "Invalid messages"


class ModelNotFound(ServiceError):
    """A chat completion asked for a model the router does not serve."""

    status = 404
    title = "Model not found"


class UnsupportedParameter(ServiceError):
    """A chat completion parameter the router cannot honour (tools, n > 1, images)."""

    status = 400
    title = "Unsupported parameter"


class UpstreamFailed(ServiceError):
    """No agent could answer: every model tried failed or was unavailable (502).

    `extra` names the route, the models tried and why each failed; API keys never appear.
    """

    status = 502
    title = "No agent could answer"


class UpstreamTimeout(UpstreamFailed):
    """No agent could answer because every model that was reached timed out (504)."""

    status = 504
    title = "Agents timed out"


_ROUTER_STATUS: dict[type[RouterError], tuple[int, str]] = {
    StoreUnavailable: (503, "Index unavailable"),
    IndexMissing: (503, "Index missing"),
    IndexIncompatible: (503, "Index incompatible with the loaded model"),
    ModelUnavailable: (503, "Embedding model unavailable"),
    RoutesInvalid: (422, "Routes invalid"),
    IndexBusy: (409, "Re-index already running"),
}


def problem(
    status: int, title: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    """A problem-details response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def as_service_error(exc: AgentError) -> ServiceError:
    """The HTTP side of an agent's error: the one mapping from the answering layer to statuses."""
    if isinstance(exc, NoAnswer):
        return (UpstreamTimeout if exc.timed_out else UpstreamFailed)(exc.detail, **exc.extra)
    if isinstance(exc, ParameterRefused):
        return UnsupportedParameter(exc.detail, **exc.extra)
    if isinstance(exc, MessagesRefused):
        return InvalidMessages(exc.detail, **exc.extra)
    return ServiceError(exc.detail, **exc.extra)


def problem_body(exc: ServiceError | AgentError) -> dict[str, Any]:
    """The problem-details body of `exc` (the error response's, and inside event streams)."""
    if isinstance(exc, AgentError):
        exc = as_service_error(exc)
    return {
        "type": "about:blank",
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        **exc.extra,
    }


def handle_service_error(_: Request[Any, Any, Any], exc: ServiceError) -> Response[dict[str, Any]]:
    return Response(problem_body(exc), status_code=exc.status, media_type=PROBLEM_JSON, headers=exc.headers)


def handle_agent_error(request: Request[Any, Any, Any], exc: AgentError) -> Response[dict[str, Any]]:
    return handle_service_error(request, as_service_error(exc))


def router_problem_body(exc: RouterError) -> dict[str, Any]:
    """The problem-details body of a router error (its status by class)."""
    for cls in type(exc).__mro__:
        if cls in _ROUTER_STATUS:
            status, title = _ROUTER_STATUS[cls]
            break
    else:
        status, title = 500, "Router error"
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": str(exc)}
    if isinstance(exc, RoutesInvalid):
        body["problems"] = [str(p) for p in exc.problems]
    return body


def handle_router_error(_: Request[Any, Any, Any], exc: RouterError) -> Response[dict[str, Any]]:
    body = router_problem_body(exc)
    return Response(body, status_code=body["status"], media_type=PROBLEM_JSON)


def handle_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    extra: dict[str, Any] = {}
    if exc.extra:
        extra["errors"] = exc.extra
    title = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 413: "Request body too large"}
    detail = str(exc.detail)
    if exc.status_code == 400 and not exc.extra and "Validation failed" not in detail:
        detail = f"the request body is not valid JSON: {detail}"
    return problem(exc.status_code, title.get(exc.status_code, "Error"), detail, headers=exc.headers, **extra)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "Internal error", f"unexpected {type(exc).__name__}; see logs")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ServiceError: handle_service_error,
    AgentError: handle_agent_error,
    RouterError: handle_router_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
