"""Which route set a request addresses, and whether its caller may use it.

- `/v1/sets/{set}/classify` (and `/batch`, `/v1/sets/{set}/answer`): the set in the path;
- `/v1/chat/completions`: the model, `router/<set>` (the default set's own name, `router`, for
  the default set);
- `?set=NAME` on the routes, examples, evaluation and admin endpoints;
- the default set (`ROUTER_DEFAULT_SET`) for everything else.

A credential limited to some sets (`service.security.Credential`) gets 403 for any other name,
before it is looked up (so names cannot be probed); then an unknown set is 404 and one that
cannot serve 503, naming why. The set's own rate limit (all callers together,
`ROUTER_AUTH__SET_RATE_PER_MINUTE`) is charged one query here and the rest of a request's cost
with the caller's (`service.guards.charge_queries`). The chosen set is annotated on the access
log line (`route_set`), labels the request's metrics and is returned in `x-router-set`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection

from service.errors import ModelNotFound, ServiceError
from service.observability import annotate
from service.rate_limits import retry_after_header
from service.security import EVERY_SET, Credential

if TYPE_CHECKING:
    from service.services import RouteSetServices, Services

Connection = ASGIConnection[Any, Any, Any, Any]
MODEL_PREFIX = "router/"


class RouteSetForbidden(ServiceError):
    """The credential is not given this route set."""

    status = 403
    title = "Forbidden"


class SetRateLimited(ServiceError):
    """The route set's own rate limit (all callers together) is exhausted."""

    status = 429
    title = "Too many requests"


def _services(connection: Connection) -> Services:
    services: Services = connection.app.state.services
    return services


def credential_of(connection: Connection) -> Credential:
    """What the request's credential may do (set by the guards; every set without keys)."""
    found = connection.state.get("credential")
    return found if isinstance(found, Credential) else EVERY_SET


def choose_set(connection: Connection, name: str | None) -> RouteSetServices:
    """The services of set `name` (None: the default set) for this request, after the checks of
    the module docstring. Idempotent per request: the set is charged once."""
    services = _services(connection)
    wanted = name if name is not None else services.sets.default
    credential = credential_of(connection)
    if not credential.may_use(wanted):
        given = ", ".join(sorted(credential.sets or ()))
        raise RouteSetForbidden(f"this credential may not use route set {_shown(wanted)}; it may use: {given}")
    found = services.sets.get(wanted)
    if connection.state.get("route_set") != wanted:
        wait = services.set_limiter.acquire(f"set-{wanted}")
        if wait > 0:
            raise SetRateLimited(
                f"route set {wanted!r} is over its rate limit of "
                f"{round(services.set_limiter.rate * 60)} queries per minute (all callers together)",
                headers={"Retry-After": retry_after_header(wait)},
            )
        connection.state.route_set = wanted
        annotate(route_set=wanted)
    return found


def allowed_sets(connection: Connection) -> list[str]:
    """The sets this request's credential may use, serving or not, in order."""
    credential = credential_of(connection)
    return [name for name in _services(connection).sets.names if credential.may_use(name)]


@dataclass(frozen=True)
class SetChooser:
    """Choosing the set from what only the handler reads (a chat completion's model)."""

    connection: Connection

    def for_model(self, model: str) -> RouteSetServices:
        """The set a chat completion's `model` names: `router/<set>`, or the default set's own
        name (`_router.yaml: name`); 404 for any other model."""
        services = _services(self.connection)
        sets = services.sets
        if model.startswith(MODEL_PREFIX) and model[len(MODEL_PREFIX) :] in sets.names:
            return choose_set(self.connection, model[len(MODEL_PREFIX) :])
        default = sets.serving.get(sets.default)
        if default is not None and model == default.follower.current.table.name:
            return choose_set(self.connection, None)
        available = [m for m, _ in self.models()]
        raise ModelNotFound(
            f"model {model!r} does not exist; this router serves {', '.join(repr(m) for m in available)}",
            model=model,
            available=available,
        )

    def models(self) -> list[tuple[str, RouteSetServices]]:
        """The model names this caller may ask for, with their set: the default set's name, and
        `router/<set>` for each serving set when there are several."""
        sets = _services(self.connection).sets
        allowed = allowed_sets(self.connection)
        found: list[tuple[str, RouteSetServices]] = []
        default = sets.serving.get(sets.default)
        if default is not None and sets.default in allowed:
            found.append((default.follower.current.table.name, default))
        if len(sets.names) > 1:
            found += [(MODEL_PREFIX + name, sets.serving[name]) for name in allowed if name in sets.serving]
        return found


def _shown(name: str) -> str:
    shown = name if len(name) <= 40 else name[:37] + "..."
    return repr("".join(c if c.isprintable() else "?" for c in shown))
