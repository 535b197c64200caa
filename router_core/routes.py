"""Routes as data: load and validate a routes directory into a frozen route table.

A routes directory holds one YAML file per route (`<name>.yaml`), one file of router
defaults (`_router.yaml`) and, optionally, the route set's follow-ups (`_follow_ups.yaml`:
`follow_ups:` a list of user messages that continue a conversation; router_core.follow_ups)
and replies (`_replies.yaml`: `replies:` agent messages with how often a new topic followed
them; router_core.replies).
Every problem is reported with the file, the field and the reason; nothing is half-loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model

from router_core.agents import AgentSpec, CannedAgent, LLMAgent, StrictModel
from router_core.constants import recorded
from router_core.conversation_words import IGNORED_WORDS
from router_core.errors import Problem, RoutesInvalid
from router_core.follow_ups import FOLLOW_UP_ROUTE, FOLLOW_UPS_FILE, MAX_FOLLOW_UPS
from router_core.params import (
    RETIRED_CONVERSATION_PARAMS,
    TUNABLE_NAMES,
    ConversationParams,
    DecisionParams,
    LLMRoutingParams,
    Mode,
    pydantic_fields,
)
from router_core.replies import MAX_REPLIES, MAX_REPLY_COUNT, REPLIES_FILE, REPLY_ROUTE, Reply
from router_core.route_policy import RoutePolicy
from router_core.routes_dir import FileRefused, candidate_files, read_bounded

ROUTER_FILE = "_router.yaml"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_EXAMPLE_CHARS = 1000
# Problems quote as little of a file as they can: it may be anything but route YAML.
_MAX_QUOTE = 60
_MAX_REASON = 200

_AGENT = TypeAdapter(AgentSpec)
# libyaml's loader when PyYAML was built with it: parsing 150 route files of 100 examples
# takes ~0.1 s instead of ~1.2 s, which is most of an incremental re-index.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RouteFile(StrictModel):
    """The schema of one route file."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(min_length=1, max_length=2000)
    examples: list[str] = Field(default_factory=list, description="Needed unless the router's mode is llm.")
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    agent: AgentSpec


class FollowUpsFile(StrictModel):
    """The schema of `_follow_ups.yaml`."""

    follow_ups: list[str] = Field(
        max_length=MAX_FOLLOW_UPS, description="user messages that continue a conversation (router_core.follow_ups)"
    )


class ReplyEntry(StrictModel):
    """One entry of `_replies.yaml`."""

    text: str = Field(description="an agent message (its end, as the conversation rule reads it)")
    new_topic: int = Field(ge=0, le=MAX_REPLY_COUNT, description="times the user's next message opened a new topic")
    same_topic: int = Field(ge=0, le=MAX_REPLY_COUNT, description="times it stayed on the topic")


class RepliesFile(StrictModel):
    """The schema of `_replies.yaml`."""

    replies: list[ReplyEntry] = Field(
        max_length=MAX_REPLIES, description="agent messages and what the user did next (router_core.replies)"
    )


class _RouterFileBase(StrictModel):
    """`_router.yaml` without the decision parameters, which `RouterFile` adds."""

    name: str = Field(default="router", pattern=NAME_PATTERN)
    default_route: str = Field(default="default", pattern=NAME_PATTERN)
    default_agent: AgentSpec = CannedAgent(name="default-agent", reply="Sorry, I can't help with that request.")
    mode: Mode = Field(default="embedding", description="embedding, llm or hybrid (router_core.pipeline)")


ConversationSection: type[StrictModel] = create_model(
    "ConversationSection",
    __base__=StrictModel,
    __doc__="`_router.yaml: conversation:`",
    **pydantic_fields(ConversationParams, tunable_only=False),
)
LLMSection: type[StrictModel] = create_model(
    "LLMSection", __base__=StrictModel, __doc__="`_router.yaml: llm:`", **pydantic_fields(LLMRoutingParams)
)
RouterFile: type[_RouterFileBase] = create_model(  # the schema of `_router.yaml`
    "RouterFile",
    __base__=_RouterFileBase,
    __doc__="The schema of `_router.yaml`.",
    conversation=(ConversationSection, Field(default_factory=ConversationSection)),
    llm=(LLMSection, Field(default_factory=LLMSection)),
    **pydantic_fields(DecisionParams),
)


@dataclass(frozen=True)
class Route:
    """One route: what it handles, its examples and the agent that answers it."""

    name: str
    description: str
    examples: tuple[str, ...]
    agent: LLMAgent | CannedAgent
    threshold: float | None = None


@dataclass(frozen=True)
class RouteTable:
    """Every route plus the router defaults; the unit an index version is built from."""

    name: str
    routes: tuple[Route, ...]
    default_agent: LLMAgent | CannedAgent
    params: DecisionParams
    mode: Mode = "embedding"
    conversation: ConversationParams = field(default_factory=ConversationParams)
    llm: LLMRoutingParams = field(default_factory=LLMRoutingParams)
    follow_ups: tuple[str, ...] = ()  # `_follow_ups.yaml` (router_core.follow_ups)
    replies: tuple[Reply, ...] = ()  # `_replies.yaml` (router_core.replies)

    def get(self, name: str) -> Route | None:
        """The route called `name`, or None (also for the default route)."""
        return next((r for r in self.routes if r.name == name), None)

    def agent_for(self, route: str) -> LLMAgent | CannedAgent:
        """The agent answering `route`; the default agent for the default route."""
        found = self.get(route)
        return found.agent if found else self.default_agent

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored in every index version (examples are in the points)."""
        return {
            "name": self.name,
            **self.params.tunable_values(),
            "default_route": self.params.default_route,
            "mode": self.mode,
            "conversation": self.conversation.to_dict(),
            "llm": self.llm.to_dict(),
            "constants": recorded(IGNORED_WORDS),
            "default_agent": self.default_agent.model_dump(mode="json"),
            "routes": [
                {
                    "name": r.name,
                    "description": r.description,
                    "threshold": r.threshold,
                    "examples": len(r.examples),
                    "agent": r.agent.model_dump(mode="json"),
                }
                for r in self.routes
            ],
            # only when there are some: a version's fingerprint stays what it was without them
            **({"follow_ups": len(self.follow_ups)} if self.follow_ups else {}),
            # the texts are points of the version; their counts are recorded here
            **({"replies": {r.text: [r.new_topic, r.same_topic] for r in self.replies}} if self.replies else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], examples: Mapping[str, tuple[str, ...]]) -> RouteTable:
        """Rebuild a table stored by `to_dict`, given each route's examples."""
        missing = [k for k in ("name", "default_agent", "routes") if k not in data]
        if missing:  # written by every version: a table without them is damaged, not old
            raise KeyError(f"route table lacks {', '.join(missing)}")
        routes = tuple(
            Route(
                name=r["name"],
                description=r["description"],
                examples=examples.get(r["name"], ()),
                agent=_AGENT.validate_python(r["agent"]),
                threshold=r["threshold"],
            )
            for r in data["routes"]
        )
        fields = {k: data[k] for k in RouterFile.model_fields if k in data}
        if isinstance(fields.get("conversation"), Mapping):  # versions indexed before a parameter retired
            fields["conversation"] = {
                k: v for k, v in fields["conversation"].items() if k not in RETIRED_CONVERSATION_PARAMS
            }
        router = RouterFile.model_validate(fields)
        counts = data.get("replies", {})
        replies = tuple(Reply(t, int(counts[t][0]), int(counts[t][1])) for t in examples.get(REPLY_ROUTE, ()))
        return _table(router, routes, examples.get(FOLLOW_UP_ROUTE, ()), replies)


def normalise_utterance(text: str) -> str:
    """The form used to detect duplicates: case-folded, whitespace collapsed."""
    return " ".join(text.split()).casefold()


def load_routes(directory: Path | str, policy: RoutePolicy | None = None) -> RouteTable:
    """Load and validate a routes directory; raise RoutesInvalid listing every problem.

    `policy` bounds what the files may ask for (key variables, LLM hosts, sizes); by default
    the documented defaults (`RoutePolicy()`).
    """
    policy = policy or RoutePolicy()
    root = Path(directory)
    if not root.is_dir():
        raise RoutesInvalid([Problem(str(root), "", "routes directory does not exist")])
    problems: list[Problem] = []
    router_path = root / ROUTER_FILE
    router: _RouterFileBase = RouterFile()
    if router_path.exists() or router_path.is_symlink():
        parsed = _parse(root, router_path, RouterFile, policy, problems)
        router = parsed if isinstance(parsed, RouterFile) else router
        _check_agent(ROUTER_FILE, "default_agent", router.default_agent, policy, problems)
    follow_ups = _load_follow_ups(root, policy, problems)
    replies = _load_replies(root, policy, problems)
    files = [p for p in candidate_files(root) if p.name not in (ROUTER_FILE, FOLLOW_UPS_FILE, REPLIES_FILE)]
    routes: list[Route] = []
    for path in files:
        parsed_route = _parse(root, path, RouteFile, policy, problems)
        if isinstance(parsed_route, RouteFile):
            route = _check_route(path, parsed_route, policy, problems)
            if route is not None:
                routes.append(route)
    if not files:
        problems.append(Problem(str(root), "", "no route files (*.yaml) found"))
    total = sum(len(r.examples) for r in routes)
    if total > policy.max_examples:
        problems.append(
            Problem(
                str(root),
                "examples",
                f"{total} examples in all; the limit is {policy.max_examples} (ROUTER_ROUTE_FILES__MAX_EXAMPLES)",
            )
        )
    _check_table(root, router, routes, problems)
    if problems:
        raise RoutesInvalid(problems)
    return _table(router, tuple(routes), follow_ups, replies)


def _load_replies(root: Path, policy: RoutePolicy, problems: list[Problem]) -> tuple[Reply, ...]:
    """`_replies.yaml`, its texts cleaned as examples are (whitespace collapsed; empty, too long
    or repeated entries refused; an entry counting nothing is refused), or () when there is none."""
    path = root / REPLIES_FILE
    if not (path.exists() or path.is_symlink()):
        return ()
    parsed = _parse(root, path, RepliesFile, policy, problems)
    if not isinstance(parsed, RepliesFile):
        return ()
    before = len(problems)
    texts = _clean_utterances(path.name, "replies", [e.text for e in parsed.replies], problems)
    for i, entry in enumerate(parsed.replies):
        if entry.new_topic + entry.same_topic == 0:
            problems.append(Problem(path.name, f"replies.{i}", "counts nothing: new_topic and same_topic are both 0"))
    if len(problems) > before:
        return ()
    return tuple(Reply(t, e.new_topic, e.same_topic) for t, e in zip(texts, parsed.replies, strict=True))


def _load_follow_ups(root: Path, policy: RoutePolicy, problems: list[Problem]) -> tuple[str, ...]:
    """`_follow_ups.yaml` cleaned as examples are (whitespace collapsed; empty, too long or
    repeated entries refused), or () when there is none."""
    path = root / FOLLOW_UPS_FILE
    if not (path.exists() or path.is_symlink()):
        return ()
    parsed = _parse(root, path, FollowUpsFile, policy, problems)
    if not isinstance(parsed, FollowUpsFile):
        return ()
    return _clean_utterances(path.name, "follow_ups", parsed.follow_ups, problems)


def _clean_utterances(file: str, field: str, texts: list[str], problems: list[Problem]) -> tuple[str, ...]:
    """`texts` with whitespace collapsed; every empty, too long or repeated one is a problem."""
    seen: dict[str, int] = {}
    cleaned: list[str] = []
    for i, raw in enumerate(texts):
        text = " ".join(raw.split())
        if not text:
            problems.append(Problem(file, f"{field}.{i}", "empty example" if field == "examples" else "empty entry"))
            continue
        if len(text) > MAX_EXAMPLE_CHARS:
            problems.append(Problem(file, f"{field}.{i}", f"longer than {MAX_EXAMPLE_CHARS} characters"))
            continue
        key = normalise_utterance(text)
        if key in seen:
            problems.append(Problem(file, f"{field}.{i}", f"duplicate of {field}.{seen[key]}: {_cut(text)!r}"))
            continue
        seen[key] = i
        cleaned.append(text)
    return tuple(cleaned)


def _table(
    router: _RouterFileBase,
    routes: tuple[Route, ...],
    follow_ups: tuple[str, ...] = (),
    replies: tuple[Reply, ...] = (),
) -> RouteTable:
    sections = router.model_dump(include={"conversation", "llm"})  # the sections RouterFile adds to the base
    return RouteTable(
        name=router.name,
        routes=routes,
        default_agent=router.default_agent,
        params=_params(router, routes),
        mode=router.mode,
        conversation=ConversationParams(**sections["conversation"]),
        llm=LLMRoutingParams(**sections["llm"]),
        follow_ups=follow_ups,
        replies=replies,
    )


def _params(router: _RouterFileBase, routes: Iterable[Route]) -> DecisionParams:
    return DecisionParams(
        **router.model_dump(include=set(TUNABLE_NAMES)),
        route_thresholds={r.name: r.threshold for r in routes if r.threshold is not None},
        default_route=router.default_route,
    )


def _parse(
    root: Path, path: Path, schema: type[BaseModel], policy: RoutePolicy, problems: list[Problem]
) -> BaseModel | None:
    try:
        text = read_bounded(root, path, policy.max_file_bytes)
    except FileRefused as exc:
        problems.append(Problem(path.name, "", str(exc)))
        return None
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)  # a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problems.append(Problem(path.name, "", f"invalid YAML at {where}: {_yaml_reason(exc)}"))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(path.name, "", "expected a mapping of fields at the top level"))
        return None
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems.extend(_validation_problems(path.name, exc))
        return None


def _validation_problems(file: str, exc: ValidationError) -> list[Problem]:
    """One problem per error, but only the first unknown field of each mapping: a file that is
    not route YAML at all (a key file, say) must not be echoed key by key."""
    found: list[Problem] = []
    unknown: dict[str, list[str]] = {}
    for err in exc.errors():
        parts = [_cut(str(part), 40) for part in err["loc"] if part not in ("llm", "canned")]
        if err["type"] == "extra_forbidden":
            parent = ".".join(parts[:-1])
            if parent not in unknown:
                found.append(Problem(file, ".".join(parts), "unknown field"))
            unknown.setdefault(parent, []).append(parts[-1] if parts else "")
            continue
        found.append(Problem(file, ".".join(parts), _cut(err["msg"], _MAX_REASON)))
    for parent, keys in unknown.items():
        if len(keys) > 1:
            where = f"under {parent}" if parent else "at the top level"
            found.append(Problem(file, parent, f"{len(keys) - 1} more unknown field(s) {where}, not listed"))
    return found


def _cut(text: str, limit: int = _MAX_QUOTE) -> str:
    """`text` on one line, at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _yaml_reason(exc: yaml.YAMLError) -> str:
    return _cut(str(getattr(exc, "problem", None) or exc), 100)


def _check_agent(
    file: str, field: str, agent: LLMAgent | CannedAgent, policy: RoutePolicy, problems: list[Problem]
) -> None:
    """An LLM agent may name only allowed key variables and hosts."""
    if not isinstance(agent, LLMAgent):
        return
    if agent.api_key_env is not None:
        reason = policy.key_env_problem(agent.api_key_env)
        if reason:
            problems.append(Problem(file, f"{field}.api_key_env", reason))
    if agent.base_url is not None:
        reason = policy.base_url_problem(agent.base_url)
        if reason:
            problems.append(Problem(file, f"{field}.base_url", reason))


def _check_route(path: Path, parsed: RouteFile, policy: RoutePolicy, problems: list[Problem]) -> Route | None:
    before = len(problems)
    _check_agent(path.name, "agent", parsed.agent, policy, problems)
    if parsed.name != path.stem:
        problems.append(Problem(path.name, "name", f"route name {parsed.name!r} must match the file name"))
    cleaned = _clean_utterances(path.name, "examples", parsed.examples, problems)
    if len(problems) > before:
        return None
    return Route(
        name=parsed.name,
        description=parsed.description.strip(),
        examples=cleaned,
        agent=parsed.agent,
        threshold=parsed.threshold,
    )


def _check_table(root: Path, router: _RouterFileBase, routes: list[Route], problems: list[Problem]) -> None:
    names: dict[str, int] = {}
    for route in routes:
        names[route.name] = names.get(route.name, 0) + 1
    for name, count in names.items():
        if count > 1:
            problems.append(Problem(str(root), "name", f"duplicate route name {name!r}"))
    mode = router.mode
    if mode != "llm":
        problems.extend(
            Problem(
                f"{route.name}.yaml",
                "examples",
                f"no examples: mode {mode} routes by example (add examples, or set mode: llm in {ROUTER_FILE})",
            )
            for route in routes
            if not route.examples
        )
    if router.default_route in names:
        problems.append(
            Problem(
                ROUTER_FILE,
                "default_route",
                f"{router.default_route!r} is also a route name; the default route must be distinct",
            )
        )
    owners: dict[str, str] = {}
    for route in routes:
        for example in route.examples:
            key = normalise_utterance(example)
            other = owners.setdefault(key, route.name)
            if other != route.name:
                problems.append(
                    Problem(
                        f"{route.name}.yaml",
                        "examples",
                        f"conflict: {_cut(example)!r} is also an example of route {other!r}",
                    )
                )
