"""Settings shared by every process: where routes, the model and the index are.

Environment variables carry the prefix `ROUTER_` with `__` between nested names
(`ROUTER_INDEX__DATA_DIR`); a `.env` file is read too. The conventional `QDRANT_URL` and
`QDRANT_API_KEY` are honoured when the prefixed names are not set. The `ROUTER_QDRANT__*` names
of earlier releases still work for one release, with a deprecation warning. Tests build
settings directly; they set variables (with pytest's monkeypatch, undone after the test) only
where the code under test reads the environment by design: API keys, which route files name by
variable and are never written in settings, and the indexer CLI, whose settings are the
environment. The session's shared conversion cache (ROUTER_INDEX__MODELS_DIR) is the one
variable set for a whole run, so that the processes the tests start share one export.
"""

from __future__ import annotations

import difflib
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from router_core.decision_log.settings import DecisionLogSettings
from router_core.embedding import DEFAULT_MODEL
from router_core.embedding.derived import default_root
from router_core.embedding.loader import DEFAULT_BACKEND, Backend
from router_core.route_policy import DEFAULT_KEY_ENVS, RoutePolicy

log = logging.getLogger("router.settings")


class SettingsSection(BaseModel):
    """A nested settings group: unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


class EmbeddingSettings(SettingsSection):
    """Which sentence-transformers model embeds examples and queries, and what runs it."""

    model: str = Field(
        default=DEFAULT_MODEL,
        description="Model name or path: all-MiniLM-L6-v2 (shipped), all-mpnet-base-v2 (bin/setup --mpnet), "
        "or a sentence-transformers directory (a fine-tuned model).",
    )
    backend: Backend = Field(
        default=DEFAULT_BACKEND,
        description="What runs the model: onnx (ONNX Runtime, default), openvino (fp32), torch; "
        "approximate, opt-in: openvino-bf16, onnx-int8.",
    )
    device: str = Field(default="cpu", description="torch device (the other backends run on the CPU).")
    threads: int = Field(
        default=0,
        ge=0,
        le=256,
        description="Intra-op threads per forward pass; 0 = automatic (1 for MiniLM-sized models, 2 for "
        "base-sized ones such as mpnet). Bulk encodes run one pass per core side by side.",
    )
    batch_size: int = Field(default=64, ge=1, le=4096)


class QdrantServerSettings(SettingsSection):
    """How to reach a Qdrant server (or cluster)."""

    url: str | None = Field(default=None, description="Qdrant server URL; unset = the embedded index.")
    api_key: SecretStr | None = None
    timeout_s: int = Field(default=10, ge=1)


class RouteFileSettings(SettingsSection):
    """What route files may ask for (`ROUTER_ROUTE_FILES__*`): route authors are not the operator."""

    key_envs: list[str] = Field(
        default_factory=lambda: list(DEFAULT_KEY_ENVS),
        description="Environment variables an agent's api_key_env may name (glob patterns); "
        "ROUTER_* and QDRANT_* are refused whatever this says.",
    )
    llm_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (or host:port; glob patterns) an agent's base_url may name; empty: any host.",
    )
    max_file_bytes: int = Field(default=1_000_000, ge=1024, description="Largest route file read.")
    max_examples: int = Field(default=100_000, ge=1, description="Most examples across all routes.")
    max_sets: int = Field(
        default=64,
        ge=1,
        le=1000,
        description="Most route sets (folders of the routes root, or entries of ROUTER_ROUTE_SETS): each one "
        "holds an index open.",
    )

    def policy(self) -> RoutePolicy:
        """The bounds as the route loader takes them."""
        return RoutePolicy(tuple(self.key_envs), tuple(self.llm_hosts), self.max_file_bytes, self.max_examples)


SET_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
"""A route set's name: lower-case letters, digits and dashes (at most 32, not starting with a
dash). It names the set in URLs, the index's collection and the decision log."""


class RouteSetEntry(SettingsSection):
    """One route set named in the settings (`ROUTER_ROUTE_SETS`): its name and routes folder."""

    name: str = Field(pattern=SET_NAME_PATTERN, description="The set's name: [a-z0-9-], at most 32 characters.")
    routes_dir: Path = Field(description="Its routes folder (*.yaml and its own _router.yaml).")


IndexBackend = Literal["auto", "embedded", "qdrant"]


class IndexSettings(SettingsSection):
    """Where the index lives and how many versions are kept.

    The backend is Qdrant Edge, embedded in the process on local disk under `data_dir`, or a
    Qdrant server; `auto` picks the server when `qdrant.url` is set. `data_dir` also holds
    fine-tuned models; converted models (ONNX exports, OpenVINO IR) are cached once per machine
    and user (`models_dir`).
    """

    backend: IndexBackend = Field(default="auto", description="embedded, qdrant, or auto (qdrant when a URL is set).")
    data_dir: Path = Field(default=Path(".router-data"), description="Embedded index and fine-tuned models.")
    models_dir: Path | None = Field(
        default=None,
        description="Where converted models (ONNX exports, OpenVINO IR) are cached, one cache per machine "
        "and user; unset: $XDG_CACHE_HOME/semantic-router/models, else ~/.cache/semantic-router/models.",
    )
    collection: str = Field(default="router", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    scan: Literal["matrix", "engine"] = Field(
        default="matrix",
        description="How the embedded index is searched: matrix (its vectors in memory, an exact numpy "
        "scan that leaves the interpreter lock free) or engine (Qdrant Edge's exact search of the shard); "
        "the same neighbours. A Qdrant server always searches itself.",
    )
    keep_versions: int = Field(
        default=2,
        ge=2,
        le=20,
        description="Index versions kept, the live one included. At least 2: service replicas "
        "on a Qdrant server may serve the previous version until they next read the pointer.",
    )
    qdrant: QdrantServerSettings = QdrantServerSettings()

    @property
    def derived_models_dir(self) -> Path:
        """Where converted models (ONNX exports, OpenVINO IR) are cached, with their checksums: the
        machine's cache (XDG) unless `models_dir` says otherwise, whatever the data directory."""
        return self.models_dir or default_root()

    @property
    def uses_server(self) -> bool:
        """True when the index is on a Qdrant server."""
        return self.backend == "qdrant" or (self.backend == "auto" and bool(self.qdrant.url))

    @model_validator(mode="after")
    def _server_needs_url(self) -> IndexSettings:
        if self.backend == "qdrant" and not self.qdrant.url:
            raise ValueError("index backend 'qdrant' needs ROUTER_INDEX__QDRANT__URL (or QDRANT_URL)")
        return self


# ROUTER_QDRANT__<key> of earlier releases: where each key lives now.
_DEPRECATED_QDRANT = {
    "url": ("qdrant", "url"),
    "api_key": ("qdrant", "api_key"),
    "timeout_s": ("qdrant", "timeout_s"),
    "data_dir": (None, "data_dir"),
    "collection": (None, "collection"),
    "keep_versions": (None, "keep_versions"),
}


class _ConventionalQdrantEnv(PydanticBaseSettingsSource):
    """Reads QDRANT_URL / QDRANT_API_KEY, below the prefixed variables in priority."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        section = {
            key: os.environ[env]
            for key, env in (("url", "QDRANT_URL"), ("api_key", "QDRANT_API_KEY"))
            if os.environ.get(env)
        }
        return {"index": {"qdrant": section}} if section else {}


class _DeprecatedQdrantEnv(PydanticBaseSettingsSource):
    """Reads the `ROUTER_QDRANT__*` names of earlier releases into the index section, below
    the new names in priority, with a deprecation warning naming the replacement."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        index: dict[str, Any] = {}
        prefix = "ROUTER_QDRANT__"
        for name, value in os.environ.items():
            if not name.upper().startswith(prefix):
                continue
            key = name[len(prefix) :].lower()
            if key not in _DEPRECATED_QDRANT:
                raise ValueError(f"{name} is not a setting (ROUTER_QDRANT__* is deprecated: use ROUTER_INDEX__*)")
            section, new_key = _DEPRECATED_QDRANT[key]
            new_name = f"ROUTER_INDEX__{'QDRANT__' if section else ''}{new_key.upper()}"
            message = f"{name} is deprecated and will be removed in the next release; use {new_name}"
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            log.warning(message)
            (index.setdefault("qdrant", {}) if section else index)[new_key] = value
        return {"index": index} if index else {}


class RouterSettings(BaseSettings):
    """Settings of the indexer; the service extends them."""

    model_config = SettingsConfigDict(
        env_prefix="ROUTER_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        nested_model_default_partial_update=True,
    )

    routes_dir: Path = Field(
        default=Path("routes"),
        description="Directory of route YAML files (one route set, `default`), or a routes root holding one "
        "folder per route set (routes/<set>/*.yaml, each with its own _router.yaml).",
    )
    route_sets: list[RouteSetEntry] = Field(
        default_factory=list,
        description="Route sets by name and folder, instead of the folders of the routes root "
        '(JSON: [{"name": "support", "routes_dir": "routes/support"}, ...]).',
    )
    default_set: str | None = Field(
        default=None,
        pattern=SET_NAME_PATTERN,
        description="The route set of the paths that name none (/v1/classify, model `router`); unset: "
        "`default` when there is such a set, else the first by name.",
    )
    route_files: RouteFileSettings = RouteFileSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    index: IndexSettings = IndexSettings()
    decision_log: DecisionLogSettings = DecisionLogSettings()
    # Settings narrowed to one route set of several (`route_sets.RouteSets.settings_for`): the
    # routes root it was found in (None: named in ROUTER_ROUTE_SETS) and its name, so that the
    # commands the indexer suggests name the set, not its folder.
    _route_set_origin: tuple[Path | None, str] | None = PrivateAttr(default=None)

    @property
    def route_set_origin(self) -> tuple[Path | None, str] | None:
        """(the routes root, the set's name) when narrowed to one set of several, else None."""
        return self._route_set_origin

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            _DeprecatedQdrantEnv(settings_cls),
            _ConventionalQdrantEnv(settings_cls),
            file_secret_settings,
        )


def settings_problems(exc: Exception, model: type[BaseModel] = RouterSettings) -> list[str]:
    """What is wrong with the settings, one line per problem, naming the variable and the
    problem but never the value (a key set under the wrong name must not reach a log)."""
    if not isinstance(exc, ValidationError):
        # pydantic-settings' own errors (a JSON value that does not parse) name the field only.
        return [_strip_values(str(exc))]
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in err["loc"]]
        name = "ROUTER_" + "__".join(p.upper() for p in loc if not p.isdigit())
        name += "".join(f"[{p}]" for p in loc if p.isdigit())
        if err["type"] == "extra_forbidden":
            hint = _closest(model, loc)
            problems.append(f"{name}: not a setting" + (f" (did you mean {hint}?)" if hint else ""))
        else:
            problems.append(f"{name}: {_strip_values(err['msg'])}")
    return problems


def _strip_values(text: str) -> str:
    message = " ".join(text.split())
    message = message.removeprefix("Value error, ")
    return message if len(message) <= 200 else message[:197] + "..."


def _closest(model: type[BaseModel], loc: Sequence[str]) -> str | None:
    """The setting nearest to a misspelt one, as its variable name."""
    section: type[BaseModel] | None = model
    for part in loc[:-1]:
        field = section.model_fields.get(part) if section is not None else None
        annotation = field.annotation if field is not None else None
        section = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    if section is None:
        return None
    close = difflib.get_close_matches(loc[-1].lower(), list(section.model_fields), n=1, cutoff=0.6)
    return "ROUTER_" + "__".join([*(p.upper() for p in loc[:-1]), close[0].upper()]) if close else None
