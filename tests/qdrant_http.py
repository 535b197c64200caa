"""A Qdrant REST server for tests: qdrant-client's local mode served over real HTTP.

No Qdrant server binary is available here, so `QdrantHttpStandIn` exposes one
`QdrantClient(":memory:")` (or `path=`) through the REST endpoints qdrant-client's REST
transport calls for `QdrantStore`, answering with Qdrant's envelopes:
`{"result": ..., "status": "ok", "time": ...}` and `{"status": {"error": ...}, "time": ...}`.

It runs under uvicorn on 127.0.0.1 in a background thread. The data outlives `stop()`, and
`start()` reuses the same port, so a test can take "Qdrant" down and bring it back. Fault
knobs (`set_delay`, `fail_next`) act on the API paths, never on `/` and the health paths, so
qdrant-client's background version check cannot consume them. With `api_key`, API paths
require the `api-key` header (or `Authorization: Bearer`), like Qdrant; `/` and the health
paths stay open, as in Qdrant. Nothing about requests but method and path is recorded.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.metadata
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from litestar import Litestar, Request, Response, delete, get, post, put
from litestar.params import FromPath
from pydantic import BaseModel, TypeAdapter, ValidationError
from qdrant_client import QdrantClient
from qdrant_client.http import models

from devkit.serving import free_port

_OPEN_PATHS = frozenset({"/", "/healthz", "/livez", "/readyz"})
_INSERT = TypeAdapter(models.PointInsertOperations)
AnyRequest = Request[Any, Any, Any]


class _Rejected(Exception):
    """A request answered with Qdrant's error envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> Response[Any]:
    return Response({"status": {"error": message}, "time": 0.0}, status_code=status)


def _dump(value: Any) -> Any:
    """JSON form of a qdrant-client result, as a Qdrant server would send it."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def _server_version() -> str:
    """The installed client's own version, so qdrant-client's compatibility check passes."""
    major, minor, *_ = importlib.metadata.version("qdrant-client").split(".")
    return f"{major}.{minor}.0"


class QdrantHttpStandIn:
    """qdrant-client local mode behind Qdrant's REST API, with fault knobs."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        port: int | None = None,
        path: Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.local = QdrantClient(path=str(path)) if path is not None else QdrantClient(":memory:")
        self.host = host
        self.port = port or free_port()
        self._api_key = api_key
        self._lock = threading.Lock()  # the local client is used by one request at a time
        self._delay_s = 0.0
        self._failures: list[int] = []
        self._requests: list[str] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL clients connect to."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server currently accepts connections."""
        return self._server is not None

    def start(self, *, startup_timeout: float = 15.0) -> str:
        """Serve on the stand-in's port (the same one after a stop); returns the base URL."""
        if self._server is not None:
            return self.url
        server = uvicorn.Server(
            uvicorn.Config(
                self._app(),
                host=self.host,
                port=self.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=1,
            )
        )
        name = f"qdrant-standin-{self.port}"
        thread = threading.Thread(target=server.run, name=name, daemon=True)
        thread.start()
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the Qdrant stand-in could not listen on {self.url}")
            if time.monotonic() > deadline:
                server.should_exit = True
                raise TimeoutError("the Qdrant stand-in did not start in time")
            time.sleep(0.01)
        self._server, self._thread = server, thread
        return self.url

    def stop(self) -> None:
        """Stop listening and drop open connections (clients then get 'connection refused')."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=10)

    def close(self) -> None:
        """Stop and release the local client (its data is gone unless it lives under `path`)."""
        self.stop()
        self.local.close()

    def __enter__(self) -> QdrantHttpStandIn:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # fault knobs -------------------------------------------------------------------------------

    def set_delay(self, seconds: float) -> None:
        """Delay every API response by `seconds` (0 turns it off)."""
        self._delay_s = max(0.0, seconds)

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """Answer the next `n` API requests with `status` and Qdrant's error envelope."""
        with self._lock:
            self._failures.extend([status] * n)

    @property
    def requests(self) -> list[str]:
        """`METHOD path` of every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    # the app -----------------------------------------------------------------------------------

    async def _gate(self, request: AnyRequest) -> Response[Any] | None:
        """Record, authenticate and apply faults before any API handler runs."""
        path = request.url.path
        with self._lock:
            self._requests.append(f"{request.method} {path}")
        if path in _OPEN_PATHS:
            return None
        if self._api_key is not None and not self._authorised(request):
            return _error(401, "Must provide an API key or an Authorization bearer token")
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        with self._lock:
            status = self._failures.pop(0) if self._failures else None
        if status is not None:
            return _error(status, f"Service unavailable: injected failure ({status})")
        return None

    def _authorised(self, request: AnyRequest) -> bool:
        assert self._api_key is not None
        given = request.headers.get("api-key")
        if given is None:
            auth = request.headers.get("authorization", "")
            given = auth[7:] if auth.lower().startswith("bearer ") else None
        return given is not None and hmac.compare_digest(given.encode(), self._api_key.encode())

    def _answer(self, fn: Callable[[], Any]) -> Response[Any]:
        """Run `fn` against the local client; wrap its result or its error in Qdrant's envelope."""
        t0 = time.perf_counter()
        try:
            with self._lock:
                result = fn()
        except _Rejected as exc:
            return _error(exc.status, exc.message)
        except (ValidationError, json.JSONDecodeError) as exc:
            return _error(400, f"Format error in JSON body: {exc}")
        except ValueError as exc:  # the local client's way of saying "not found" / "bad input"
            text = str(exc)
            if "not found" in text or "does not exist" in text:
                return _error(404, f"Not found: {text}")
            return _error(400, f"Wrong input: {text}")
        except Exception as exc:  # reported to the client as Qdrant reports a 500
            return _error(500, f"Service internal error: {type(exc).__name__}: {exc}")
        body = {"result": _dump(result), "status": "ok", "time": time.perf_counter() - t0}
        return Response(body, status_code=200)

    def _existing(self, name: str) -> str:
        if not self.local.collection_exists(name):
            raise _Rejected(404, f"Not found: Collection `{name}` doesn't exist!")
        return name

    def _app(self) -> Litestar:
        local = self.local
        answer, existing = self._answer, self._existing

        @get("/", sync_to_thread=False)
        def root() -> Response[Any]:
            return Response({"title": "qdrant - vector search engine (test stand-in)", "version": _server_version()})

        @get(["/healthz", "/livez", "/readyz"], sync_to_thread=False, media_type="text/plain")
        def health() -> str:
            return "healthz check passed"

        @get("/collections", sync_to_thread=False)
        def list_collections() -> Response[Any]:
            return answer(local.get_collections)

        @get("/collections/{name:str}", sync_to_thread=False)
        def get_collection(name: FromPath[str]) -> Response[Any]:
            return answer(lambda: local.get_collection(existing(name)))

        @get("/collections/{name:str}/exists", sync_to_thread=False)
        def collection_exists(name: FromPath[str]) -> Response[Any]:
            return answer(lambda: {"exists": local.collection_exists(name)})

        @put("/collections/{name:str}")
        async def create_collection(name: FromPath[str], request: AnyRequest) -> Response[Any]:
            raw = await request.body()

            def create() -> bool:
                body = models.CreateCollection.model_validate_json(raw or b"{}")
                return local.create_collection(
                    name,
                    vectors_config=body.vectors,
                    sparse_vectors_config=body.sparse_vectors,
                    metadata=body.metadata,
                )

            return answer(create)

        @delete("/collections/{name:str}", status_code=200, sync_to_thread=False)
        def delete_collection(name: FromPath[str]) -> Response[Any]:
            return answer(lambda: local.delete_collection(name))

        @get("/aliases", sync_to_thread=False)
        def list_aliases() -> Response[Any]:
            return answer(local.get_aliases)

        @get("/collections/{name:str}/aliases", sync_to_thread=False)
        def collection_aliases(name: FromPath[str]) -> Response[Any]:
            return answer(lambda: local.get_collection_aliases(existing(name)))

        @post("/collections/aliases")
        async def update_aliases(request: AnyRequest) -> Response[Any]:
            raw = await request.body()

            def change() -> bool:  # the local client applies the whole list or nothing
                body = models.ChangeAliasesOperation.model_validate_json(raw)
                return local.update_collection_aliases(change_aliases_operations=body.actions)

            return answer(change)

        @put("/collections/{name:str}/points")
        async def upsert(name: FromPath[str], request: AnyRequest) -> Response[Any]:
            raw = await request.body()

            def write() -> models.UpdateResult:
                body = _INSERT.validate_json(raw)
                points = body.points if isinstance(body, models.PointsList) else body.batch
                return local.upsert(existing(name), points=points, wait=True)

            return answer(write)

        @post("/collections/{name:str}/points/scroll")
        async def scroll(name: FromPath[str], request: AnyRequest) -> Response[Any]:
            raw = await request.body()

            def page() -> models.ScrollResult:
                body = models.ScrollRequest.model_validate_json(raw or b"{}")
                points, offset = local.scroll(
                    existing(name),
                    scroll_filter=body.filter,
                    limit=body.limit if body.limit is not None else 10,
                    offset=body.offset,
                    order_by=body.order_by,
                    with_payload=body.with_payload if body.with_payload is not None else True,
                    with_vectors=body.with_vector if body.with_vector is not None else False,
                )
                return models.ScrollResult(points=points, next_page_offset=offset)

            return answer(page)

        @post("/collections/{name:str}/points/count")
        async def count(name: FromPath[str], request: AnyRequest) -> Response[Any]:
            raw = await request.body()

            def total() -> models.CountResult:
                body = models.CountRequest.model_validate_json(raw or b"{}")
                exact = body.exact if body.exact is not None else True
                return local.count(existing(name), count_filter=body.filter, exact=exact)

            return answer(total)

        @post("/collections/{name:str}/points/query/batch")
        async def query_batch(name: FromPath[str], request: AnyRequest) -> Response[Any]:
            raw = await request.body()

            def search() -> list[models.QueryResponse]:
                body = models.QueryRequestBatch.model_validate_json(raw)
                return local.query_batch_points(existing(name), requests=body.searches)

            return answer(search)

        return Litestar(
            route_handlers=[
                root,
                health,
                list_collections,
                get_collection,
                collection_exists,
                create_collection,
                delete_collection,
                list_aliases,
                collection_aliases,
                update_aliases,
                upsert,
                scroll,
                count,
                query_batch,
            ],
            before_request=self._gate,
            openapi_config=None,
        )
