"""The HTTP server the service runs under: uvicorn, with bounded request heads and bodies.

uvicorn's httptools protocol reads a request head of any size for as long as the client takes
to send it, and a body as slowly as the client trickles it. `BoundedHeadProtocol` refuses a
head larger than `max_header_bytes` (431, then closes), whether it arrives over many reads or
in one (the request line and headers are counted as they are parsed), closes a connection
whose head is not complete within `header_timeout_s` of its first byte, or of the connection
opening (408 when part of a head arrived), and answers 408 and closes when a request's body is
not complete within `body_timeout_s` of its head. Memory per connection stays bounded and a
slow client cannot hold a connection (or a handler waiting for its body) open for long.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.client_gone import CUT_OFF_KEY
from service.settings import HttpSettings

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a request head over the limit."""


class BoundedHeadProtocol(HttpToolsProtocol):
    """httptools' protocol with a size and a time limit on each request head."""

    max_header_bytes = 32 * 1024
    header_timeout_s = 10.0
    body_timeout_s = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # the first request's head is due as soon as the connection opens
        self._head_bytes = 0
        self._parsed_head = 0  # bytes of request line and headers parsed for the current request
        self._oversized = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_body()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(431, f"the request head exceeds {self.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed_head = 0
        if not self._in_head:  # a later request on a kept-alive connection
            self._in_head = True
            self._head_bytes = 0
            self._arm()

    # A head that arrives in one read is parsed whole within that read: count it as it is parsed.
    def on_url(self, url: bytes) -> None:
        self._count_parsed(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_parsed(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def _count_parsed(self, size: int) -> None:
        self._parsed_head += size
        if self._parsed_head > self.max_header_bytes:
            self._oversized = True
            raise HeadTooLarge  # stops the parser; uvicorn answers through send_400_response

    def send_400_response(self, msg: str) -> None:
        if self._oversized:
            self._refuse(431, f"the request head exceeds {self.max_header_bytes} bytes")
            return
        super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()
        self._arm_body()

    def on_message_complete(self) -> None:
        self._disarm_body()
        super().on_message_complete()

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

    def _arm_body(self) -> None:
        self._disarm_body()
        self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_timed_out)

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is None or self.transport.is_closing() or not cycle.more_body:
            return
        cast("dict[str, Any]", cycle.scope)[CUT_OFF_KEY] = 408  # read by RequestContext
        detail = f"the request body was not complete within {self.body_timeout_s:g} s"
        if cycle.response_started:
            self.logger.warning("closed a connection: %s", detail)
            self.transport.close()
            return
        self._refuse(408, detail)

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
        {
            "max_header_bytes": http.max_header_bytes,
            "header_timeout_s": http.header_timeout_s,
            "body_timeout_s": http.body_timeout_s,
        },
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
