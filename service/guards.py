"""Litestar guards: where a request may come from, API keys on public endpoints, the admin token
on /admin, rate limits, and the media type of JSON bodies.

In order, for /v1 and /admin:
1. Browser cross-origin writes are refused (403): a POST whose `Origin` is neither the service
   itself nor a configured CORS origin. Without any key configured, the `Host` must be a
   loopback name (or one of `ROUTER_HTTP__ALLOWED_HOSTS`): a page on another site cannot reach
   the open service by DNS rebinding.
2. Credentials: 401 when no valid credential was presented (with `WWW-Authenticate: Bearer`),
   403 when a valid credential lacks the right (a public key on an admin endpoint), 400 for two
   `Authorization` headers. Without keys the `Authorization` header is not read at all (a proxy
   in front may send its own, Basic or otherwise), on public and admin endpoints alike.
3. Failed authentication is limited per client address and per presented credential
   (`ROUTER_AUTH__FAILED_PER_MINUTE`, `service.security.FailedAuthLimiter`): a credential that
   failed too often is 429 from anywhere, unchecked; from a blocked address credentials are
   still checked, at most `ROUTER_AUTH__BLOCKED_CHECKS_PER_MINUTE` of them (a valid one goes
   through, an invalid one is 429), and keys that authenticated before are always checked. A
   valid caller behind a shared address is not locked out by someone else's failures.
4. Rate limit per caller (key, or address when open): 429 with Retry-After. A request costs one;
   a batch costs one per query (charged by the handler, `charge_queries`). The route set a
   request addresses has a limit of its own, all callers together (`service.set_choice`).
5. JSON endpoints take `application/json` only (415): a form or `text/plain` body is what a
   cross-site page can send without a preflight.

The guards are coroutines although nothing in them waits: Litestar runs a plain-function guard
in a worker thread, two thread hand-offs per request for a few dictionary lookups.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.errors import ServiceError
from service.observability import annotate
from service.rate_limits import FailedAuthLimiter, RateLimiter, retry_after_header
from service.security import EVERY_SET, Credential, KeyRing, is_loopback, key_id

if TYPE_CHECKING:  # services imports the controllers' dependencies; guards only read it
    from service.services import Services

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="router"'}
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Unauthorized(ServiceError):
    """No valid credential."""

    status = 401
    title = "Unauthorized"


class Forbidden(ServiceError):
    """A valid credential without the needed right, or a request from where it may not come."""

    status = 403
    title = "Forbidden"


class AmbiguousCredentials(ServiceError):
    """More than one Authorization header."""

    status = 400
    title = "Ambiguous credentials"


class RateLimited(ServiceError):
    """Too many requests (or failed authentications) from one caller."""

    status = 429
    title = "Too many requests"


class UnsupportedMediaType(ServiceError):
    """A JSON endpoint sent something other than JSON."""

    status = 415
    title = "Unsupported media type"


Connection = ASGIConnection[Any, Any, Any, Any]


def _services(connection: Connection) -> Services:
    services: Services = connection.app.state.services
    return services


def _address(connection: Connection) -> str:
    return connection.client.host if connection.client else "-"


# -- where the request comes from ---------------------------------------------------------------
def _check_origin(connection: Connection, *, open_mode: bool) -> None:
    settings = _services(connection).settings
    host = connection.headers.get("host", "")
    origin = connection.headers.get("origin")
    if origin is not None and connection.scope.get("method") in _UNSAFE:
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:
            netloc = ""
        if origin not in settings.auth.cors_origins and (not netloc or netloc.lower() != host.lower()):
            raise Forbidden(
                "cross-origin requests from browsers may not change anything here; add the site to "
                "ROUTER_AUTH__CORS_ORIGINS to allow it"
            )
    if open_mode and not _local_host(host, tuple(settings.http.allowed_hosts)):
        raise Forbidden(
            "without API keys the service answers only requests addressed to a loopback name "
            "(localhost, 127.0.0.1, [::1]); set ROUTER_AUTH__API_KEYS, or ROUTER_HTTP__ALLOWED_HOSTS"
        )


@functools.lru_cache(maxsize=256)  # bounded: Host headers are the client's to choose
def _local_host(host: str, allowed: tuple[str, ...]) -> bool:
    """The Host header names loopback (or an allowed name), with or without a port (remembered:
    parsing it took a few percent of the event loop's time per request, issue 23)."""
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return False
    return is_loopback(name) or name in {h.lower() for h in allowed} or host.lower() in {h.lower() for h in allowed}


# -- credentials ----------------------------------------------------------------------------------
def _bearer(connection: Connection) -> str | None:
    headers = connection.headers.getall("authorization", [])
    if len(headers) > 1:
        raise AmbiguousCredentials("send one Authorization header, not several")
    if not headers or not headers[0]:
        return None
    scheme, _, token = headers[0].partition(" ")
    presented = token.strip() if scheme.lower() == "bearer" else headers[0]
    _admit(connection, presented)
    if scheme.lower() != "bearer" or not presented:
        raise _failed(
            connection, presented, Unauthorized("the Authorization header must be 'Bearer <token>'", headers=_CHALLENGE)
        )
    return presented


def _too_many_failures(wait: float) -> RateLimited:
    return RateLimited(
        "too many failed authentication attempts from this address or with this credential; try again later",
        headers={"Retry-After": retry_after_header(wait)},
    )


def _admit(connection: Connection, presented: str) -> None:
    """429 when the credential may not even be checked now (it, or this address, failed too often)."""
    failures: FailedAuthLimiter = _services(connection).auth_failures
    wait = failures.admit(f"ip-{_address(connection)}", presented)
    if wait > 0:
        raise _too_many_failures(wait)


def _failed(connection: Connection, presented: str, exc: ServiceError) -> ServiceError:
    """`exc` (or 429 once the address is past its limit), after counting the failure against
    the address and the credential."""
    failures: FailedAuthLimiter = _services(connection).auth_failures
    blocked = failures.failed(f"ip-{_address(connection)}", presented)
    return _too_many_failures(blocked) if blocked > 0 and exc.status == 401 else exc


def _authenticated(connection: Connection, token: str) -> None:
    _services(connection).auth_failures.succeeded(token)


def _limit(connection: Connection, identity: str) -> None:
    limiter: RateLimiter = _services(connection).limiter
    connection.state.caller = identity
    wait = limiter.acquire(identity)
    if wait > 0:
        raise RateLimited(
            f"rate limit of {round(limiter.rate * 60)} queries per minute exceeded",
            headers={"Retry-After": retry_after_header(wait)},
        )


def charge_queries(connection: Connection, queries: int) -> None:
    """Charge a batch's queries beyond the first (the guard charged one for the request), to the
    caller and to the route set it addresses. The batch goes ahead; the caller's (and the set's)
    next requests wait until the bucket has refilled."""
    if queries <= 1:
        return
    identity = connection.state.get("caller")
    if identity is not None:
        _services(connection).limiter.charge(identity, queries - 1)
    route_set = connection.state.get("route_set")
    if route_set is not None:
        _services(connection).set_limiter.charge(f"set-{route_set}", queries - 1)


def caller_of(connection: Connection) -> str:
    """Who the request is from, as the rate limit counts it (a key's id, or the address)."""
    identity = connection.state.get("caller")
    return str(identity) if identity is not None else f"ip-{_address(connection)}"


async def require_api_key_and_json(connection: Connection, _: BaseRouteHandler) -> None:
    """Public endpoints: a configured API key (or the admin token) unless none is configured,
    then JSON bodies (`require_json`). One guard, not two: Litestar copies the route handler for
    every guard it runs, on every request."""
    _check_api_key(connection)
    _check_json(connection)


def _check_api_key(connection: Connection) -> None:
    keys: KeyRing = _services(connection).keyring
    _check_origin(connection, open_mode=keys.public_open)
    credential: Credential | None = Credential(admin=False)  # every set
    if keys.public_open:
        # No key to check: the Authorization header is not ours to read (a proxy in front may
        # send its own), and a made-up token must not buy a fresh rate-limit bucket.
        identity = f"ip-{_address(connection)}"
    else:
        token = _bearer(connection)
        if token is None:
            raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'", headers=_CHALLENGE)
        credential = keys.credential(token)
        if credential is None:
            raise _failed(connection, token, Unauthorized("the API key is not valid", headers=_CHALLENGE))
        _authenticated(connection, token)
        identity = key_id(token)
    connection.state.credential = credential  # the route sets it may use (service.set_choice)
    annotate(caller=identity)
    _limit(connection, identity)


async def require_admin(connection: Connection, _: BaseRouteHandler) -> None:
    """Admin endpoints: the admin token; open only when no key of any kind is configured."""
    keys: KeyRing = _services(connection).keyring
    _check_origin(connection, open_mode=keys.open)
    if keys.open:
        connection.state.credential = EVERY_SET
        annotate(caller="admin-open")
        return
    if not keys.admin_configured:
        raise Forbidden("admin endpoints are disabled: set ROUTER_AUTH__ADMIN_TOKEN to enable them")
    token = _bearer(connection)
    if token is None:
        raise Unauthorized("the admin token is required: send 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    credential = keys.credential(token)
    if credential is not None and credential.admin:
        _authenticated(connection, token)
        connection.state.credential = credential  # every set, or the sets of a set's admin token
        annotate(caller="admin" if credential.sets is None else f"admin-{key_id(token)}")
        return
    if credential is not None:
        _authenticated(connection, token)
        raise Forbidden("this API key may not use admin endpoints")
    raise _failed(connection, token, Unauthorized("the admin token is not valid", headers=_CHALLENGE))


async def require_json(connection: Connection, _: BaseRouteHandler) -> None:
    """A body-taking endpoint: the body must be declared `application/json` (or `+json`)."""
    _check_json(connection)


def _check_json(connection: Connection) -> None:
    if connection.scope.get("method") not in _UNSAFE:
        return
    media = connection.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise UnsupportedMediaType(
            "the request body must be JSON sent with 'Content-Type: application/json'",
            headers={"Accept-Post": "application/json"},
        )
