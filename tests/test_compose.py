"""Checks of the container setup: compose.yaml validates, and wires the stack in order.

Validation runs `bin/validate-compose`, which uses docker-compose 1.29.2's
`config` command in its own virtualenv (.venv-compose), so no Docker engine is
needed. The first run installs that virtualenv from PyPI.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "compose.yaml"
VALIDATOR = REPO_ROOT / "bin" / "validate-compose"

# Installing docker-compose into .venv-compose on the first run takes a while.
VALIDATE_TIMEOUT_S = 900


def run_validator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VALIDATOR), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=VALIDATE_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    with COMPOSE_FILE.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.mark.slow  # the first run installs docker-compose into .venv-compose
def test_validator_accepts_compose_file_and_lists_services():
    """bin/validate-compose exits 0 on compose.yaml and prints exactly qdrant, indexer, service."""
    result = run_validator()
    assert result.returncode == 0, result.stdout + result.stderr
    services = {line.strip() for line in result.stdout.splitlines() if line.strip()}
    assert services == {"qdrant", "indexer", "service"}


@pytest.mark.slow  # the first run installs docker-compose into .venv-compose
def test_validator_rejects_dependency_on_unknown_service(tmp_path):
    """bin/validate-compose exits non-zero when a service depends on an undefined service."""
    broken = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    broken["services"]["service"]["depends_on"]["no-such-service"] = {"condition": "service_healthy"}
    broken_file = tmp_path / "compose.yaml"
    broken_file.write_text(yaml.safe_dump(broken, sort_keys=False), encoding="utf-8")

    result = run_validator(str(broken_file))

    assert result.returncode != 0, result.stdout + result.stderr
    assert "no-such-service" in result.stderr


@pytest.mark.slow  # the first run installs docker-compose into .venv-compose
def test_validator_rejects_unknown_depends_on_condition(tmp_path):
    """bin/validate-compose exits non-zero on a depends_on condition the Compose spec does not define."""
    broken = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    broken["services"]["service"]["depends_on"]["indexer"]["condition"] = "service_finished"
    broken_file = tmp_path / "compose.yaml"
    broken_file.write_text(yaml.safe_dump(broken, sort_keys=False), encoding="utf-8")

    result = run_validator(str(broken_file))

    assert result.returncode != 0, result.stdout + result.stderr


def test_indexer_waits_for_healthy_qdrant(compose):
    """The indexer starts only once qdrant is healthy, runs python -m indexer, and is not restarted."""
    indexer = compose["services"]["indexer"]
    assert indexer["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert indexer["command"] == ["python", "-m", "indexer"]
    assert indexer["restart"] == "no"


def test_service_waits_for_indexer_to_complete(compose):
    """The service starts only after the indexer exited 0 and qdrant is healthy, and is health-checked on /readyz."""
    service = compose["services"]["service"]
    assert service["depends_on"]["indexer"]["condition"] == "service_completed_successfully"
    assert service["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert service["command"] == ["python", "-m", "service"]
    assert "127.0.0.1:8000:8000" in service["ports"]
    assert "/readyz" in " ".join(service["healthcheck"]["test"])


def test_published_ports_bind_the_host_loopback_only(compose):
    """The stack runs without API keys (admin included): no port is published beyond the host's
    loopback unless that service is configured with keys."""
    for name, svc in compose["services"].items():
        env = svc.get("environment") or {}
        keyed = bool(env.get("ROUTER_AUTH__API_KEYS")) and bool(env.get("ROUTER_AUTH__ADMIN_TOKEN"))
        for port in svc.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).rpartition(":")[0].rpartition(":")[0]
            assert keyed or host_ip == "127.0.0.1", f"{name} publishes {port} on every interface without keys"


def test_qdrant_has_storage_volume_and_healthcheck(compose):
    """Qdrant keeps /qdrant/storage on a named volume, has a healthcheck, and is pinned to v1.16 or newer."""
    qdrant = compose["services"]["qdrant"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in qdrant["volumes"]}
    assert "/qdrant/storage" in mounts
    assert mounts["/qdrant/storage"] in compose["volumes"]
    assert qdrant["healthcheck"]["test"]

    name, _, tag = qdrant["image"].partition(":")
    assert name == "qdrant/qdrant"
    major, minor = (int(part) for part in tag.lstrip("v").split(".")[:2])
    assert (major, minor) >= (1, 16)


def test_router_services_share_image_and_mount_routes_read_only(compose):
    """Indexer and service build the same image and both mount ./routes read-only."""
    indexer = compose["services"]["indexer"]
    service = compose["services"]["service"]
    assert indexer["build"] == service["build"] == "."
    assert indexer["image"] == service["image"]
    for svc in (indexer, service):
        assert "./routes:/app/routes:ro" in svc["volumes"]
        assert svc["environment"]["ROUTER_ROUTES_DIR"] == "/app/routes"
        assert svc["environment"]["ROUTER_INDEX__QDRANT__URL"] == "http://qdrant:6333"


def test_compose_serves_two_route_sets_from_mounted_folders(compose):
    """ROUTER_ROUTE_SETS names two sets whose folders are mounted read-only from the repository,
    and each of them loads."""
    from router_core import load_routes, route_sets_of
    from router_core.settings import RouterSettings

    for svc in (compose["services"]["indexer"], compose["services"]["service"]):
        mounts = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"] if v.endswith(":ro")}
        settings = RouterSettings(_env_file=None, route_sets=json.loads(svc["environment"]["ROUTER_ROUTE_SETS"]))
        found = route_sets_of(settings)
        assert found.names == ("default", "it-helpdesk") and found.default == "default"
        for spec in found.sets:
            inside = next(m for m in mounts if str(spec.routes_dir).startswith(m))
            local = REPO_ROOT / mounts[inside] / spec.routes_dir.relative_to(inside)
            assert load_routes(local).routes, spec.name
