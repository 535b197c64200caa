"""What the generated OpenAPI schema cannot infer: query rules, configured limits, closed
request bodies and event streams."""

from __future__ import annotations

import copy
from typing import Any

from litestar import Litestar
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, Schema

from service.agents.chat_messages import ROLES
from service.answer_schemas import AnswerRequest
from service.controllers.evaluation import EvaluateRequest
from service.controllers.feedback import FeedbackRequest
from service.controllers.review import MAX_ID, AcceptIn, MarkIn, PreviewIn
from service.query_text import SCHEMA_PATTERN
from service.schemas import PROBLEM_DESCRIPTIONS, BatchClassifyRequest, ClassifyRequest, ConversationIn
from service.settings import LimitSettings

# Request bodies that refuse unknown fields, which the generated schema does not say.
CLOSED_REQUESTS = (
    ClassifyRequest,
    BatchClassifyRequest,
    ConversationIn,
    AnswerRequest,
    EvaluateRequest,
    FeedbackRequest,
    PreviewIn,
    AcceptIn,
    MarkIn,
)


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
    _document_guards(app)
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
        if name == "MessageIn":  # the roles of OpenAI's chat schema, all accepted
            props["role"].enum = list(ROLES)  # type: ignore[union-attr]
        if name == "BatchClassifyRequest":
            for field in ("queries", "conversations"):
                array = props[field].one_of[0]  # type: ignore[union-attr, index]
                array.min_items = 1  # type: ignore[union-attr]
                array.max_items = limits.max_batch  # type: ignore[union-attr]
            _query(props["queries"].one_of[0].items, limits.max_query_chars)  # type: ignore[union-attr, index, arg-type]
            schema.one_of = [Schema(required=["queries"]), Schema(required=["conversations"])]
        if name in ("PreviewIn", "AcceptIn", "MarkIn"):  # decision ids: the items' bounds
            props["ids"].items.minimum, props["ids"].items.maximum = 0, MAX_ID  # type: ignore[union-attr]
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


# What the guards (service.guards) may answer on every /v1 and /admin operation, and on those
# taking a JSON body; the re-index's own outcomes.
GUARDED_PREFIXES = ("/v1/", "/admin/")
GUARD_CODES = (400, 401, 403, 429)
JSON_BODY_CODES = (413, 415)
REINDEX_CODES = (409, 422, 503, 504)


def _document_guards(app: Litestar) -> None:
    paths = app.openapi_schema.paths or {}
    template = _problem_response(paths)
    if template is None:
        return
    for path, item in paths.items():
        if not path.startswith(GUARDED_PREFIXES):
            continue
        for method in ("get", "post"):
            operation: Operation | None = getattr(item, method)
            if operation is None:
                continue
            codes = list(GUARD_CODES)
            if method == "post" and path.startswith("/v1/"):
                codes += JSON_BODY_CODES
            if path == "/admin/reindex":
                codes += REINDEX_CODES
            responses = operation.responses if operation.responses is not None else {}
            for code in codes:
                if str(code) not in responses:
                    response = copy.deepcopy(template)
                    response.description = PROBLEM_DESCRIPTIONS[code]
                    responses[str(code)] = response
            operation.responses = responses


def _problem_response(paths: dict[str, Any]) -> OpenAPIResponse | None:
    """A problem-details response the schema already holds, to copy."""
    item = paths.get("/v1/classify")
    operation = getattr(item, "post", None) if item is not None else None
    found = (operation.responses or {}).get("401") if operation is not None else None
    return found if isinstance(found, OpenAPIResponse) else None
