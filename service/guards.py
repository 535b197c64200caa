"""Litestar guards: API keys on public endpoints, the admin token on /admin, rate limits.

401 when no valid credential was presented (with `WWW-Authenticate: Bearer`), 403 when a
valid credential lacks the right (a public key on an admin endpoint), 429 with Retry-After
when a caller exceeds its rate.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.errors import ServiceError
from service.observability import annotate
from service.security import KeyRing, RateLimiter, key_id, retry_after_header

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="router"'}


class Unauthorized(ServiceError):
    """No valid credential."""

    status = 401
    title = "Unauthorized"


class Forbidden(ServiceError):
    """A valid credential without the needed right."""

    status = 403
    title = "Forbidden"


class RateLimited(ServiceError):
    """Too many requests from one caller."""

    status = 429
    title = "Too many requests"


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'", headers=_CHALLENGE)
    return token.strip()


def _limit(connection: ASGIConnection[Any, Any, Any, Any], identity: str) -> None:
    limiter: RateLimiter = connection.app.state.services.limiter
    wait = limiter.acquire(identity)
    if wait > 0:
        raise RateLimited(
            f"rate limit of {round(limiter.rate * 60)} requests per minute exceeded",
            headers={"Retry-After": retry_after_header(wait)},
        )


def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Public endpoints: a configured API key (or the admin token) unless none is configured."""
    keys: KeyRing = connection.app.state.services.keyring
    if keys.public_open:
        # No key to check: the Authorization header is not ours to read (a proxy in front may
        # send its own), and a made-up token must not buy a fresh rate-limit bucket.
        identity = f"ip-{connection.client.host if connection.client else '-'}"
    else:
        token = _bearer(connection)
        if token is None:
            raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'", headers=_CHALLENGE)
        if not (keys.is_api_key(token) or keys.is_admin(token)):
            raise Unauthorized("the API key is not valid", headers=_CHALLENGE)
        identity = key_id(token)
    annotate(caller=identity)
    _limit(connection, identity)


def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Admin endpoints: the admin token; open only when no key of any kind is configured."""
    keys: KeyRing = connection.app.state.services.keyring
    token = _bearer(connection)
    if keys.open:
        annotate(caller="admin-open")
        return
    if not keys.admin_configured:
        raise Forbidden("admin endpoints are disabled: set ROUTER_AUTH__ADMIN_TOKEN to enable them")
    if token is None:
        raise Unauthorized("the admin token is required: send 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    if keys.is_admin(token):
        annotate(caller="admin")
        return
    if keys.is_api_key(token):
        raise Forbidden("this API key may not use admin endpoints")
    raise Unauthorized("the admin token is not valid", headers=_CHALLENGE)
