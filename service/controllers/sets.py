"""Route sets over HTTP: GET /v1/sets (the sets the caller may use) and the classify and answer
endpoints of one set, `/v1/sets/{set}/classify`, `/v1/sets/{set}/classify/batch` and
`/v1/sets/{set}/answer`: the same handlers as `/v1/classify` and `/v1/answer`, whose routing
stage is the path's set (`service.app._set_dependencies`)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency

from service.controllers.answer import AnswerController
from service.controllers.classify import ClassifyController
from service.schemas import problem_responses
from service.served_sets import ServedSets
from service.set_choice import MODEL_PREFIX, allowed_sets


class SetClassifyController(ClassifyController):
    """Route queries and conversations with the route set named in the path."""

    path = "/classify"
    tags = ("sets",)


class SetAnswerController(AnswerController):
    """Route and answer with the route set named in the path."""

    path = "/answer"
    tags = ("sets",)


class SetOut(msgspec.Struct):
    """A route set: whether it serves, its router's name and served version, and the model name
    that picks it on /v1/chat/completions."""

    name: str
    serving: bool
    default: bool
    model: str
    router: str | None = None
    index_version: str | None = None
    routes: int | None = None


class SetsResponse(msgspec.Struct):
    """The route sets the credential may use, in name order, and the default set."""

    default: str
    sets: list[SetOut]


@get("/v1/sets", tags=["sets"], summary="The route sets the caller may use", responses=problem_responses(401, 429))
async def list_sets(request: Request[Any, Any, Any], served_sets: NamedDependency[ServedSets]) -> SetsResponse:
    """Each set the credential may use: serving or not (a set that cannot serve is named in
    /readyz with why), its router, live version and route count."""
    out = []
    for name in allowed_sets(request):
        services = served_sets.serving.get(name)
        item = SetOut(name, services is not None, name == served_sets.default, MODEL_PREFIX + name)
        if services is not None:
            index = services.follower.current
            item.router, item.index_version, item.routes = index.table.name, index.version, len(index.table.routes)
        out.append(item)
    return SetsResponse(served_sets.default, out)
