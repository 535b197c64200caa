"""GET /schema/swagger (and /schema): Swagger UI, served by the service itself.

Litestar's Swagger and Scalar pages load their scripts from a CDN without integrity checks: blank
offline, and a third-party script running on the service's origin (which, in open mode, may call
the admin endpoints). Here the page, its script and its style are files of the `swagger-ui-py`
package (Swagger UI 5, which reads OpenAPI 3.1), read once and served from
`/schema/swagger/static/`; the page's Content-Security-Policy allows only the service's own
origin, so nothing is fetched from anywhere else and no inline script runs.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from litestar import Request, Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import FromPath

STATIC = "/swagger/static"
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "init.js": "text/javascript; charset=utf-8",
}
# Swagger UI styles its elements through the DOM (style attributes), hence style-src's
# 'unsafe-inline'; scripts, data and images come from this origin only.
DOCS_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# The page's one script of our own: start Swagger UI on the schema the page names.
_INIT = b"""window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.schema,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
  });
});
"""


def _assets() -> dict[str, bytes]:
    root = resources.files("swagger_ui").joinpath("static")
    files = {name: root.joinpath(name).read_bytes() for name in ASSETS if name != "init.js"}
    return {**files, "init.js": _INIT}


class SwaggerPage(OpenAPIRenderPlugin):
    """Swagger UI at `<schema path>/swagger`, with its assets served by the service."""

    def __init__(self) -> None:
        super().__init__(path="/swagger", favicon="", style="")
        self._files = _assets()

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The page: a container, Swagger UI's style and scripts, nothing inline."""
        base = request.app.openapi_config.path if request.app.openapi_config else "/schema"
        static = f"{base}{STATIC}"
        title = str(openapi_schema.get("info", {}).get("title", "API"))
        return (
            "<!doctype html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,">'  # no favicon request
            f"<title>{_escape(title)}</title>"
            f'<link rel="stylesheet" href="{static}/swagger-ui.css"></head>'
            f'<body data-schema="{base}/openapi.json"><div id="swagger-ui"></div>'
            f'<script src="{static}/swagger-ui-bundle.js"></script>'
            f'<script src="{static}/init.js"></script></body></html>\n'
        ).encode()

    def receive_router(self, router: Router) -> None:
        """Serve the page's assets beside it."""
        files = self._files

        @get(f"{STATIC}/{{name:str}}", include_in_schema=False, sync_to_thread=False)
        def asset(name: FromPath[str]) -> Response[bytes]:
            if name not in files:
                raise NotFoundException(f"no asset named {name!r}")
            return Response(files[name], media_type=ASSETS[name], headers={"Cache-Control": "max-age=3600"})

        router.register(asset)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def docs_router(path: str) -> Router:
    """The router the OpenAPI pages and the schema are served under, with the docs' headers."""
    return Router(path, route_handlers=[], include_in_schema=False, response_headers=DOCS_HEADERS)
