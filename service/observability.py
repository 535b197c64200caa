"""Request ids, structured JSON logs and per-request metrics."""

from __future__ import annotations

import contextvars
import logging
import os
import re
import time
from typing import Any, cast

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.client_gone import CLIENT_CLOSED, CUT_OFF_KEY, ClientWatch
from service.metrics import Metrics

REQUEST_ID_HEADER = "x-request-id"
ROUTE_SET_HEADER = "x-router-set"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_JSON = msgspec.json.Encoder(enc_hook=str)  # what json.dumps(default=str) wrote, faster
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
log_fields_var: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("log_fields", default=None)
access_log = logging.getLogger("router.access")


def annotate(**fields: Any) -> None:
    """Add fields (route chosen, timings...) to the current request's access log line."""
    current = log_fields_var.get()
    if current is not None:
        current.update(fields)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id of the request being served."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _JSON.encode(entry).decode()


def _stamp_request_id(record: logging.LogRecord) -> bool:
    """Record the request id in the thread that logs (formatting may happen elsewhere)."""
    if not hasattr(record, "request_id"):
        record.request_id = request_id_var.get()
    return True


def configure_logging(level: str = "INFO", *, json_logs: bool = True) -> None:
    """Route every logger through one handler (JSON lines unless disabled)."""
    handler = logging.StreamHandler()
    handler.addFilter(_stamp_request_id)
    handler.setFormatter(
        JsonFormatter() if json_logs else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = name != "uvicorn.access"  # we log access ourselves


# The endpoint label of requests no route matched (404, 405): never the raw path, whose
# values are unbounded.
UNMATCHED = "<unmatched>"


class RequestContext:
    """Wraps the whole ASGI app: assigns the request id, times the request, logs it once and
    counts it. Outside Litestar's routing, so requests no route matches (404, 405) are logged,
    counted and given a request id too. A request whose client left before its response was
    complete is cancelled and counted as 499 (`service.client_gone`), one the server cut off
    (a body too slow) with the status it answered."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        await self._http(scope, receive, send, self.app)

    async def _http(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        incoming = _header(scope, REQUEST_ID_HEADER)
        # 32 random hex digits, as uuid4().hex was, without building a UUID object
        rid = incoming if incoming and _VALID_ID.match(incoming) else os.urandom(16).hex()
        token_id = request_id_var.set(rid)
        fields: dict[str, Any] = {}
        token_fields = log_fields_var.set(fields)
        status = 500
        complete = False
        started = time.perf_counter()
        client = ClientWatch(receive)

        async def send_with_id(message: Message) -> None:
            nonlocal status, complete
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                if "route_set" in fields:  # the set chosen for the request (a validated name)
                    headers.append((ROUTE_SET_HEADER.encode(), str(fields["route_set"]).encode()))
                message["headers"] = headers
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True
            await send(message)

        try:
            await client.run(next_app(scope, client.receive, send_with_id), lambda: complete)
        finally:
            cut_off = cast("dict[str, Any]", scope).get(CUT_OFF_KEY)
            if cut_off:
                status = int(cut_off)
            elif client.gone:
                status = CLIENT_CLOSED
                fields["client"] = "closed the connection before the response was complete"
            elapsed = time.perf_counter() - started
            endpoint = str(scope.get("path_template") or UNMATCHED)  # set by Litestar's router
            method = str(scope.get("method", ""))
            route_set = str(fields.get("route_set", ""))  # annotated once the request's set is chosen
            self._metrics.requests.labels(endpoint, method, str(status), route_set).inc()
            self._metrics.request_seconds.labels(endpoint, route_set).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                line = {"method": method, "path": scope.get("path"), "status": status, "ms": round(elapsed * 1e3, 2)}
                # A record made directly: Logger.info would walk the stack for the caller's file
                # and line on every request (issue 23), which the access line never shows.
                record = access_log.makeRecord(
                    access_log.name,
                    logging.INFO,
                    __file__,
                    0,
                    "request",
                    (),
                    None,
                    extra={"request_id": rid, "fields": {**line, **fields}},
                )
                access_log.handle(record)
            log_fields_var.reset(token_fields)
            request_id_var.reset(token_id)


def _header(scope: Scope, name: str) -> str | None:
    key = name.encode()
    for k, v in scope.get("headers", []):
        if k.lower() == key:
            return bytes(v).decode("latin-1")
    return None
