"""Settings shared by every process: where routes, the model and the index are.

Environment variables carry the prefix `ROUTER_` with `__` between nested names
(`ROUTER_QDRANT__URL`); a `.env` file is read too. The conventional `QDRANT_URL` and
`QDRANT_API_KEY` are honoured when the prefixed names are not set. Tests build settings
directly instead of touching the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from router_core.embedding import DEFAULT_MODEL


class SettingsSection(BaseModel):
    """A nested settings group: unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


class EmbeddingSettings(SettingsSection):
    """Which sentence-transformers model embeds examples and queries."""

    model: str = Field(default=DEFAULT_MODEL, description="Model name or path (default: all-MiniLM-L6-v2, shipped).")
    device: str = "cpu"
    batch_size: int = Field(default=64, ge=1, le=4096)


class QdrantSettings(SettingsSection):
    """Where the index lives: a Qdrant server when `url` is set, else embedded on local disk."""

    url: str | None = Field(default=None, description="Qdrant server URL; unset = embedded.")
    api_key: SecretStr | None = None
    timeout_s: int = Field(default=10, ge=1)
    collection: str = Field(default="router", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    data_dir: Path = Field(default=Path(".router-data"), description="Embedded index directory.")
    keep_versions: int = Field(
        default=2,
        ge=2,
        le=20,
        description="Index versions kept, the live one included. At least 2: service replicas "
        "on a Qdrant server may serve the previous version until they next read the pointer.",
    )


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
        return {"qdrant": section} if section else {}


class IndexSettings(BaseSettings):
    """Settings of the indexer; the service extends them."""

    model_config = SettingsConfigDict(
        env_prefix="ROUTER_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        nested_model_default_partial_update=True,
    )

    routes_dir: Path = Field(default=Path("routes"), description="Directory of route YAML files.")
    embedding: EmbeddingSettings = EmbeddingSettings()
    qdrant: QdrantSettings = QdrantSettings()

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
            _ConventionalQdrantEnv(settings_cls),
            file_secret_settings,
        )
