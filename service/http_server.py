"""The HTTP server the service runs under: uvicorn, with bounded request heads.

uvicorn's httptools protocol reads a request head of any size for as long as the client takes
to send it. `BoundedHeadProtocol` refuses a head larger than `max_header_bytes` (431, then
closes) and closes a connection whose head is not complete within `header_timeout_s` of its
first byte, or of the connection opening (408 when part of a head arrived). Memory per
connection stays bounded and a slow client cannot hold a connection open without sending.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.settings import HttpSettings

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class BoundedHeadProtocol(HttpToolsProtocol):
    """httptools' protocol with a size and a time limit on each request head."""

    max_header_bytes = 32 * 1024
    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # the first request's head is due as soon as the connection opens
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(431, f"the request head exceeds {self.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # a later request on a kept-alive connection
            self._in_head = True
            self._head_bytes = 0
            self._arm()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()

    # -- limits --------------------------------------------------------------------------------
    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes == 0 and self.cycle is None:
            self.transport.close()  # opened and never used: nothing to answer
            return
        self._refuse(408, f"the request head was not complete within {self.header_timeout_s:g} s")

    def _refuse(self, status: int, detail: str) -> None:
        """A problem-details response, then close: the rest of the head is never read."""
        self._in_head = False
        self._disarm()
        body = json.dumps(
            {"type": "about:blank", "title": _REASONS[status].decode(), "status": status, "detail": detail}
        )
        head = (
            f"HTTP/1.1 {status} ".encode() + _REASONS[status] + b"\r\n"
            b"content-type: application/problem+json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n"
        )
        self.logger.warning("refused a request: %s", detail)
        self.transport.write(head + body.encode())
        self.transport.close()


def bounded_protocol(http: HttpSettings) -> type[BoundedHeadProtocol]:
    """The protocol class with `http`'s limits."""
    return type(
        "BoundedHeadProtocol",
        (BoundedHeadProtocol,),
        {"max_header_bytes": http.max_header_bytes, "header_timeout_s": http.header_timeout_s},
    )


def server_config(
    app: Any, http: HttpSettings, *, host: str | None = None, port: int | None = None, **more: Any
) -> uvicorn.Config:
    """The uvicorn configuration the service runs with (`python -m service` and devkit alike)."""
    return uvicorn.Config(
        app,
        host=host or http.host,
        port=port or http.port,
        http=bounded_protocol(http),
        access_log=False,
        **more,
    )
