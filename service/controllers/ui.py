"""The route playground: GET /ui (a page with its script and style), a redirect from `/`, and
GET /v1/caller, which tells the page whether its key may use the admin endpoints.

The page and its assets hold no data: everything the page shows comes from the API
endpoints, called from the browser with the key the user typed (kept in the tab's session
storage), under the same guards, limits and metrics as any other caller. The assets are package
files (`service/ui/`), read once when the app is built; nothing is fetched from elsewhere.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import msgspec
from litestar import Request, Response, Router, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect

from service.schemas import problem_responses
from service.security import KeyRing
from service.set_choice import allowed_sets

ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "review.js": "text/javascript; charset=utf-8",
    "turns.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
# The page loads its own script, style and data (same origin) and nothing else.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class CallerOut(msgspec.Struct):
    """What the presented credential may do (the page shows admin controls only when it may):
    the admin endpoints (`admin`), the route sets it may use and those it administers."""

    admin: bool
    sets: list[str]
    admin_sets: list[str]


def _read(name: str) -> bytes:
    return resources.files("service").joinpath("ui", name).read_bytes()


def page_html(*, public: str, admin: str) -> bytes:
    """The page, told whether public endpoints need a key (`open` or `keyed`) and how admin
    endpoints are reached (`open`, `token` or `disabled`), so it asks for a key before calling."""
    html = _read("index.html").decode("utf-8")
    return html.replace("__PUBLIC__", public).replace("__ADMIN__", admin).encode("utf-8")


def ui_router(*, keyed: bool, admin_token: bool) -> Router:
    """The page, its assets and the redirect from `/` (none of them returns data)."""
    public = "keyed" if keyed else "open"
    admin = "token" if admin_token else ("disabled" if keyed else "open")
    page = page_html(public=public, admin=admin)
    assets = {name: _read(name) for name in ASSETS}

    @get("/", include_in_schema=False)
    async def root() -> Redirect:
        return Redirect("/ui", status_code=307)

    @get("/ui", include_in_schema=False)
    async def playground() -> Response[bytes]:
        return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @get("/ui/static/{name:str}", include_in_schema=False)
    async def asset(name: FromPath[str]) -> Response[bytes]:
        if name not in assets:
            raise NotFoundException(f"no asset named {name!r}")
        return Response(assets[name], media_type=ASSETS[name], headers=PAGE_HEADERS)

    return Router(path="/", route_handlers=[root, playground, asset])


@get(
    "/v1/caller", tags=["routes"], summary="What the presented credential may do", responses=problem_responses(401, 429)
)
async def caller(request: Request[Any, Any, Any], keyring: NamedDependency[KeyRing]) -> CallerOut:
    """`admin` is true when the credential may use the admin endpoints (always, when no key of
    any kind is configured), on the route sets of `admin_sets`."""
    sets = allowed_sets(request)
    if keyring.open:
        return CallerOut(admin=True, sets=sets, admin_sets=sets)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    found = keyring.credential(token) if scheme.lower() == "bearer" and token else None
    if found is None or not found.admin:
        return CallerOut(admin=False, sets=sets, admin_sets=[])
    return CallerOut(admin=True, sets=sets, admin_sets=[n for n in sets if found.may_use(n)])
