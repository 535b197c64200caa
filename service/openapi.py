"""What the generated OpenAPI schema cannot infer: query rules, configured limits, closed
request bodies and event streams."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Schema

from service.answer_schemas import AnswerRequest
from service.controllers.evaluation import EvaluateRequest
from service.query_text import SCHEMA_PATTERN
from service.schemas import BatchClassifyRequest, ClassifyRequest, ConversationIn
from service.settings import LimitSettings

# Request bodies that refuse unknown fields, which the generated schema does not say.
CLOSED_REQUESTS = (ClassifyRequest, BatchClassifyRequest, ConversationIn, AnswerRequest, EvaluateRequest)


def _query(schema: Schema, max_chars: int) -> None:
    schema.min_length = 1
    schema.max_length = max_chars
    schema.pattern = SCHEMA_PATTERN


def _messages(schema: Schema, limits: LimitSettings) -> None:
    schema.min_items = 1
    schema.max_items = limits.max_messages


def complete_schema(app: Litestar, limits: LimitSettings) -> None:
    """Write the query rules and the configured limits into the generated schema.

    The service checks these rules itself (to name the problem clearly); documenting them lets
    clients and schema-driven tests know which requests are valid.
    """
    _document_streams(app)
    components = app.openapi_schema.components.schemas or {}
    for struct in CLOSED_REQUESTS:
        if struct.__name__ in components and struct.__struct_config__.forbid_unknown_fields:
            components[struct.__name__].additional_properties = False
    for name, schema in components.items():
        props = schema.properties or {}
        if name in ("ClassifyRequest", "AnswerRequest"):
            _query(props["query"].one_of[0], limits.max_query_chars)  # type: ignore[union-attr, index, arg-type]
            _messages(props["messages"].one_of[0], limits)  # type: ignore[union-attr, index, arg-type]
            schema.one_of = [Schema(required=["query"]), Schema(required=["messages"])]
        if name == "ConversationIn":
            _messages(props["messages"], limits)  # type: ignore[arg-type]
        if name == "BatchClassifyRequest":
            for field in ("queries", "conversations"):
                array = props[field].one_of[0]  # type: ignore[union-attr, index]
                array.min_items = 1  # type: ignore[union-attr]
                array.max_items = limits.max_batch  # type: ignore[union-attr]
            _query(props["queries"].one_of[0].items, limits.max_query_chars)  # type: ignore[union-attr, index, arg-type]
            schema.one_of = [Schema(required=["queries"]), Schema(required=["conversations"])]
        if name == "EvaluateRequest":
            schema.one_of = [Schema(required=["jsonl"]), Schema(required=["file"])]


STREAMING_OPERATIONS = ("/v1/answer", "/v1/chat/completions")


def _document_streams(app: Litestar) -> None:
    """`"stream": true` answers with server-sent events: say so beside the JSON body."""
    paths = app.openapi_schema.paths or {}
    for path in STREAMING_OPERATIONS:
        operation = paths[path].post if path in paths else None
        if operation is None or operation.responses is None:
            continue
        ok = operation.responses.get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content["text/event-stream"] = OpenAPIMediaType(
                schema=Schema(description='Server-sent events ("stream": true); see the README for events')
            )
