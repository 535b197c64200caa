"""Work for a client that has gone is cancelled, and its request is counted apart.

The ASGI server does not cancel a handler when its client disconnects: a batch of conversations
went on embedding for minutes after its client was killed. `ClientWatch` wraps one request's
`receive`: it notes when the request body is complete, and a disconnect before that (a client
closing mid-body). Once the body is complete it watches the connection; when the client goes
while the handler still works (routing, waiting for an LLM) and before the response is complete,
it cancels the handler's task: the micro-batch planner drops the request's queued items (the
forward pass already running finishes), LLM calls are abandoned.

Either way the request is "client closed" (status 499 in the metrics and the access log, as
nginx counts it), never a 500: a client cannot inflate the error rate by hanging up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from litestar.types import Receive, ReceiveMessage

CLIENT_CLOSED = 499
CUT_OFF_KEY = "router.cut_off"
"""Scope key the HTTP protocol sets to the status it answered with when it cut a request off
(408: the body did not arrive in time)."""


class ClientWatch:
    """One request's client: whether its body arrived, and whether it left before the answer."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._body_complete = asyncio.Event()
        self.gone = False  # the client disconnected before the response was complete

    async def receive(self) -> ReceiveMessage:
        """The app's `receive`: the server's, noting the end of the body and a disconnect."""
        message = await self._receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            self._body_complete.set()
        elif message["type"] == "http.disconnect" and not self._body_complete.is_set():
            self.gone = True  # closed mid-body (or before it)
        return message

    async def run(self, handler: Awaitable[None], finished: Callable[[], bool]) -> None:
        """Run `handler` (the app with this request); cancel it if the client goes once the
        body has arrived and before `finished()` (the response is complete)."""
        task = asyncio.ensure_future(handler)
        watcher = asyncio.ensure_future(self._watch(task, finished))
        try:
            await task
        except asyncio.CancelledError:
            if not (self.gone and task.cancelled()):
                raise  # cancelled from outside (the server is stopping), not by the watcher
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self, task: asyncio.Future[None], finished: Callable[[], bool]) -> None:
        await self._body_complete.wait()
        while not task.done():
            message = await self._receive()  # after the body: returns only on a disconnect
            if message["type"] != "http.disconnect":
                continue
            if not finished() and not task.done():
                self.gone = True
                task.cancel()
            return
