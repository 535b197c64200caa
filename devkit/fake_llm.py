"""A real OpenAI-compatible HTTP server on loopback, standing in for a remote LLM.

Plain asyncio on 127.0.0.1 (a free port) in a background thread, speaking HTTP/1.1 with
keep-alive: `POST /v1/chat/completions` (JSON, or SSE chunks when `"stream": true`) and
`GET /v1/models`. Every request is recorded (method, path, headers, JSON body). What it does
is scripted per model name: a queue of one-shot behaviours, then a standing behaviour, then
the default reply `"[<model>] <last user message>"`.

Behaviours: `Reply` (fixed text, streamed in N chunks with a delay), `Fail` (an HTTP error,
optionally echoing the request's Authorization header in its body), `Hang` (accept and never
answer), `Drop` (close the connection without a response), `DropMidStream` (stream some
chunks, then close) and `Choose` (answer as a decision model, deterministically). For a
decision model: `Formats` (a server taking only some kinds of `response_format`, refusing the
others as llama.cpp's or an OpenAI-like server does) and `Html` (a 200 whose body is a page,
not JSON, as a proxy in front of an endpoint may send). `Scripted` behaviours write their own
response (`RawBody`: any status, content type and body, e.g. a proxy's HTML page answering a
streamed request; `LogprobReply`: a reply carrying log probabilities, streamed or not; and in
devkit.fake_tool_calls, `UsesTools`: a model that calls a tool, then answers from its result).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reply:
    """Answer with `text` (default: echo); streams send `chunks` pieces.

    `first_delay_s` passes before the first piece (or the whole JSON answer), `delay_s`
    between later pieces.
    """

    text: str | None = None
    chunks: int = 3
    delay_s: float = 0.0
    first_delay_s: float = 0.0
    usage: bool = True


@dataclass(frozen=True)
class Fail:
    """Answer with HTTP `status` and an OpenAI-style error body."""

    status: int = 500
    message: str = "the fake LLM failed on purpose"
    echo_auth: bool = False  # append the Authorization header as received
    echo_key: bool = False  # append the credential alone, as "Incorrect API key provided: <key>"
    retry_after: float | None = None


@dataclass(frozen=True)
class Hang:
    """Read the request and never answer (until `seconds` pass or the server stops)."""

    seconds: float = 3600.0


@dataclass(frozen=True)
class Drop:
    """Close the connection without any response."""


@dataclass(frozen=True)
class DropMidStream:
    """Stream `after` chunks of the reply, then close the connection."""

    after: int = 1
    text: str = "this answer will be cut off part way"


@dataclass(frozen=True)
class Choose:
    """Answer as a decision model: `{"route": name}` with a name among the routes the prompt
    lists (`- name: description` lines) or "none", picked by a hash of the message to route:
    the same question always gets the same answer, and different questions different ones."""


def choice_for(prompt: str) -> str:
    """The route `Choose` answers for a decision prompt (router_core.llm_routing.prompt_messages)."""
    names = [line[2:].split(":", 1)[0] for line in prompt.splitlines() if line.startswith("- ") and ":" in line]
    routed = prompt.rsplit("Message to route:", 1)[-1].strip()
    options = sorted(set(names)) or ["none"]
    return options[int(hashlib.sha256(routed.encode("utf-8")).hexdigest(), 16) % len(options)]


@dataclass(frozen=True)
class Formats:
    """A server with structured output of its own, for a decision model that answers `route`.

    A request whose `response_format` type is in `refuse` gets HTTP `status` with a message
    naming response_format: with 500, the validation error llama-cpp-python's server wraps
    ("Input should be 'text' or 'json_object'"), else an OpenAI-like refusal. A json_schema or
    json_object request is answered `{"route": ...}` as constrained decoding would: `route` when
    the request's schema enum holds it, else the enum's first value. A request without
    response_format (or of type text) is answered `plain` (default: the route name, bare).
    """

    route: str
    refuse: tuple[str, ...] = ("json_schema",)
    status: int = 500
    plain: str | None = None


@dataclass(frozen=True)
class Html:
    """Answer HTTP `status` with a page instead of JSON (a proxy's sign-in or error page)."""

    status: int = 200
    body: str = "<!doctype html><html><body><h1>Sign in to the gateway</h1></body></html>"
    content_type: str = "text/html; charset=utf-8"


class Scripted:
    """A behaviour that writes its own response (`respond`); see RawBody and LogprobReply."""

    async def respond(self, model: str, body: dict[str, Any], w: Any) -> bool:
        """Answer one request; False when the connection must close."""
        raise NotImplementedError


Behaviour = Reply | Fail | Hang | Drop | DropMidStream | Choose | Formats | Html | Scripted


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))


USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def _words(text: str, n: int) -> list[str]:
    """`text` in `n` pieces that join back to it."""
    n = max(1, min(n, len(text)))
    size = -(-len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)]


@dataclass
class FakeLLM:
    """The stand-in server; use as a context manager or call start()/stop()."""

    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Recorded] = field(default_factory=list)
    _scripts: dict[str, deque[Behaviour]] = field(default_factory=dict)
    _standing: dict[str, Behaviour] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    # -- control ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL for OpenAI clients (ends in /v1)."""
        return f"http://{self.host}:{self.port}/v1"

    def script(self, model: str, *behaviours: Behaviour) -> None:
        """Queue one-shot behaviours for the next calls of `model`."""
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(behaviours)

    def always(self, model: str, behaviour: Behaviour) -> None:
        """Behave like this for `model` once its queue is empty."""
        with self._lock:
            self._standing[model] = behaviour

    def reset(self) -> None:
        """Forget recorded requests and every script."""
        with self._lock:
            self.requests.clear()
            self._scripts.clear()
            self._standing.clear()

    def calls(self, model: str | None = None) -> list[Recorded]:
        """Recorded chat completion requests, optionally of one model."""
        with self._lock:
            found = [r for r in self.requests if r.path.endswith("/chat/completions")]
        return [r for r in found if model is None or r.model == model]

    def _next(self, model: str) -> Behaviour:
        with self._lock:
            queue = self._scripts.get(model)
            if queue:
                return queue.popleft()
            return self._standing.get(model, Reply())

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeLLM:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(asyncio.start_server(self._track, self.host, self.port))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-llm", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake LLM did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP ------------------------------------------------------------------------------
    async def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._connection(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            body = json.loads(raw) if raw else {}
            with self._lock:
                self.requests.append(Recorded(method, path.split("?")[0], headers, body))
            if not await self._respond(method, path, headers, body, writer):
                return

    async def _respond(self, method: str, path: str, headers: dict[str, str], body: dict[str, Any], w: Any) -> bool:
        """Answer one request; False when the connection must close."""
        if method == "GET" and path.rstrip("/").endswith("/models"):
            model = {"id": "fake", "object": "model", "created": 0, "owned_by": "fake"}
            await self._json(w, 200, {"object": "list", "data": [model]})
            return True
        if not (method == "POST" and path.rstrip("/").endswith("/chat/completions")):
            await self._json(w, 404, {"error": {"message": f"no route {method} {path}"}})
            return True
        model = str(body.get("model", ""))
        behaviour = self._next(model)
        if isinstance(behaviour, Scripted):
            return await behaviour.respond(model, body, w)
        if isinstance(behaviour, Hang):
            await asyncio.sleep(behaviour.seconds)
            return False
        if isinstance(behaviour, Drop):
            return False
        if isinstance(behaviour, Fail):
            await self._fail(w, behaviour, headers)
            return True
        if isinstance(behaviour, Formats | Html):
            await self._structured(w, model, body, behaviour)
            return True
        if isinstance(behaviour, DropMidStream):
            pieces = _words(behaviour.text, behaviour.after + 1)[: behaviour.after]
            await self._stream(w, model, pieces, 0.0, None, complete=False)
            return False
        messages = body.get("messages", [])
        last_user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        if isinstance(behaviour, Choose):
            behaviour = Reply(json.dumps({"route": choice_for(str(last_user))}))
        text = behaviour.text if behaviour.text is not None else f"[{model}] {last_user}"
        usage = USAGE if behaviour.usage else None
        if body.get("stream"):
            if not (body.get("stream_options") or {}).get("include_usage"):
                usage = None
            pieces = _words(text, behaviour.chunks)
            await self._stream(
                w,
                model,
                pieces,
                behaviour.delay_s,
                usage,
                complete=True,
                first_delay_s=behaviour.first_delay_s,
            )
            return True
        if behaviour.first_delay_s:
            await asyncio.sleep(behaviour.first_delay_s)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
        completion = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": usage,
        }
        await self._json(w, 200, completion)
        return True

    async def _structured(self, w: Any, model: str, body: dict[str, Any], behaviour: Formats | Html) -> None:
        """Answer as a server with limited structured output does, or with a page."""
        if isinstance(behaviour, Html):
            await self._raw(w, behaviour.status, behaviour.content_type, behaviour.body.encode())
            return
        fmt = body.get("response_format") or {}
        kind = str(fmt.get("type", "text"))
        if kind in behaviour.refuse:
            await self._json(w, behaviour.status, {"error": _format_refusal(kind, behaviour.status)})
            return
        if kind in ("json_schema", "json_object"):
            schema = fmt.get("schema") if kind == "json_object" else (fmt.get("json_schema") or {}).get("schema")
            enum = (((schema or {}).get("properties") or {}).get("route") or {}).get("enum") or [behaviour.route]
            text = json.dumps({"route": behaviour.route if behaviour.route in enum else enum[0]})
        else:
            text = behaviour.plain if behaviour.plain is not None else behaviour.route
        await self._json(w, 200, _completion(model, text, USAGE))

    async def _raw(self, w: Any, status: int, content_type: str, payload: bytes) -> None:
        head = f"HTTP/1.1 {status} Fake\r\ncontent-type: {content_type}\r\ncontent-length: {len(payload)}\r\n\r\n"
        w.write(head.encode() + payload)
        await w.drain()

    async def _fail(self, w: Any, behaviour: Fail, headers: dict[str, str]) -> None:
        message = behaviour.message
        if behaviour.echo_auth:
            message += f" (you sent authorization: {headers.get('authorization', '')})"
        if behaviour.echo_key:
            message += f" Incorrect API key provided: {headers.get('authorization', '').partition(' ')[2]}."
        extra = {"retry-after": f"{behaviour.retry_after:g}"} if behaviour.retry_after else {}
        error = {"error": {"message": message, "type": "fake_error", "code": behaviour.status}}
        await self._json(w, behaviour.status, error, extra)

    @staticmethod
    async def _json(w: Any, status: int, data: Any, extra: dict[str, str] | None = None) -> None:
        payload = json.dumps(data).encode()
        head = [
            f"HTTP/1.1 {status} Fake",
            "content-type: application/json",
            f"content-length: {len(payload)}",
            *(f"{k}: {v}" for k, v in (extra or {}).items()),
        ]
        w.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        await w.drain()

    @staticmethod
    async def _chunk(w: Any, data: bytes) -> None:
        w.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await w.drain()

    async def _stream(
        self,
        w: Any,
        model: str,
        pieces: list[str],
        delay_s: float,
        usage: dict[str, int] | None,
        *,
        complete: bool,
        first_delay_s: float = 0.0,
    ) -> None:
        """SSE chunks in OpenAI's format, chunked transfer; `complete` ends them properly."""
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def event(delta: dict[str, Any] | None, finish: str | None = None, **more: Any) -> bytes:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            return b"data: " + json.dumps({**base, "choices": choices, **more}).encode() + b"\n\n"

        await self._chunk(w, event({"role": "assistant", "content": ""}))
        for i, piece in enumerate(pieces):
            pause = first_delay_s if i == 0 else delay_s
            if pause:
                await asyncio.sleep(pause)
            await self._chunk(w, event({"content": piece}))
        if not complete:
            return
        await self._chunk(w, event({}, "stop"))
        if usage is not None:
            await self._chunk(w, event(None, usage=usage))
        await self._chunk(w, b"data: [DONE]\n\n")
        w.write(b"0\r\n\r\n")
        await w.drain()


def _format_refusal(kind: str, status: int) -> dict[str, Any]:
    """The error body a server refusing `response_format` of type `kind` sends."""
    if status == 500:  # llama-cpp-python: a request validation error, wrapped as an internal error
        detail = {
            "type": "literal_error",
            "loc": ("body", "response_format", "type"),
            "msg": "Input should be 'text' or 'json_object'",
            "input": kind,
        }
        return {"message": f"1 validation error:\n  {detail}", "type": "internal_server_error", "param": None}
    message = f"Invalid parameter: 'response_format' of type '{kind}' is not supported with this model."
    return {"message": message, "type": "invalid_request_error", "param": "response_format", "code": None}


def _completion(model: str, text: str, usage: dict[str, int] | None) -> dict[str, Any]:
    """A chat completion answering `text`."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage,
    }


@contextlib.contextmanager
def running() -> Iterator[FakeLLM]:
    """A started fake LLM, stopped when the block ends."""
    with FakeLLM() as fake:
        yield fake


# -- scripted responses ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RawBody(Scripted):
    """Answer with exactly this status, content type and body, whatever was asked (a streamed
    request included): what a proxy or a captive portal in front of an endpoint does."""

    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    body: str = "<html><body><h1>Welcome</h1><p>Please sign in to continue.</p></body></html>"

    async def respond(self, model: str, body: dict[str, Any], w: Any) -> bool:
        payload = self.body.encode()
        head = [f"HTTP/1.1 {self.status} Fake", f"content-type: {self.content_type}", f"content-length: {len(payload)}"]
        w.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        await w.drain()
        return True


def token_logprobs(text: str) -> dict[str, Any]:
    """OpenAI's `logprobs` object for `text`, one entry per character (a made-up log probability)."""
    return {
        "content": [{"token": c, "logprob": -0.25, "bytes": list(c.encode()), "top_logprobs": []} for c in text],
        "refusal": None,
    }


@dataclass(frozen=True)
class LogprobReply(Scripted):
    """Answer with `text` and, when the request asked for `logprobs`, their log probabilities:
    on the choice (JSON) or on each chunk (streamed in `chunks` pieces)."""

    text: str = "forty-two"
    chunks: int = 3

    async def respond(self, model: str, body: dict[str, Any], w: Any) -> bool:
        asked = bool(body.get("logprobs"))
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": model}
        if not body.get("stream"):
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": self.text},
                "finish_reason": "stop",
                "logprobs": token_logprobs(self.text) if asked else None,
            }
            await FakeLLM._json(w, 200, {**base, "object": "chat.completion", "choices": [choice], "usage": USAGE})
            return True
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        pieces = [{"role": "assistant", "content": ""}, *({"content": p} for p in _words(self.text, self.chunks))]
        for delta in pieces:
            probs = token_logprobs(delta["content"]) if asked and delta["content"] else None
            choice = {"index": 0, "delta": delta, "finish_reason": None, "logprobs": probs}
            event = {**base, "object": "chat.completion.chunk", "choices": [choice]}
            await FakeLLM._chunk(w, b"data: " + json.dumps(event).encode() + b"\n\n")
        done = {
            **base,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        await FakeLLM._chunk(w, b"data: " + json.dumps(done).encode() + b"\n\n")
        await FakeLLM._chunk(w, b"data: [DONE]\n\n")
        w.write(b"0\r\n\r\n")
        await w.drain()
        return True
