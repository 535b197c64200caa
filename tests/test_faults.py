"""Faults on the embedded default: a deleted or corrupt index, a wrong model path, a full disk,
and a killed re-index. The service keeps answering or fails clearly; nothing served is lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from devkit.serving import ROOT, free_port, settings_for
from devkit.waiting import wait_for
from router_core import Embedder, ModelUnavailable, StoreUnavailable, load_embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from service.services import Services
from tests.conftest import ServiceFactory


def test_index_directory_deleted_while_serving(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """Deleting the data directory under a running service: the open version keeps answering
    (its files stay open), readiness turns 503 naming the missing directory (the service can
    neither follow a re-index nor restart), and a re-index restores both."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    url = start_service(settings_for(routes_dir, data))
    with httpx.Client(base_url=url, timeout=30) as c:
        shutil.rmtree(data)
        r = c.post("/v1/classify", json={"query": "What is 15% of 200?"})
        assert r.status_code == 200 and r.json()["route"] == "maths"
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "does not exist" in ready.json()["checks"]["error"]
        new = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
        wait_for(lambda: c.post("/v1/classify", json={"query": "What is 15% of 200?"}).json()["index_version"] == new)
        assert c.get("/readyz").status_code == 200


def reload_error(client: httpx.Client) -> str:
    """Why the service is not following the live pointer, as /readyz says."""
    return str(client.get("/readyz").json()["checks"].get("reload_error", ""))


def test_corrupt_version_is_refused_at_start(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> None:
    """A corrupted live version fails start-up with a StoreUnavailable naming the version."""
    data = tmp_path / "data"
    version = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
    (data / "router" / "versions" / version / "manifest.json").write_text("{not json")
    with pytest.raises(StoreUnavailable, match=version):
        Services.build(settings_for(routes_dir, data), embedder=embedder)


@pytest.mark.parametrize(
    ("scan", "damaged"),
    [("matrix", "vectors.npy"), ("matrix", "points.jsonl"), ("engine", "shard")],
)
def test_corrupt_new_version_is_not_served(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory, scan: str, damaged: str
) -> None:
    """A live pointer moved to a version whose searched files are corrupt (the vectors and their
    examples scanned in memory; the shard, for the engine's search) leaves the service on the
    good one, saying why."""
    data = tmp_path / "data"
    good = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
    base = settings_for(routes_dir, data)
    url = start_service(base.model_copy(update={"index": base.index.model_copy(update={"scan": scan})}))
    bad_dir = data / "router" / "versions" / "v29990101t000000000000-deadbeef"
    shutil.copytree(data / "router" / "versions" / good, bad_dir)
    if (bad_dir / damaged).is_dir():
        shutil.rmtree(bad_dir / damaged)
    (bad_dir / damaged).write_text("garbage")
    (data / "router" / "LIVE").write_text(bad_dir.name + "\n")
    with httpx.Client(base_url=url, timeout=30) as c:
        wait_for(lambda: bad_dir.name in reload_error(c))
        body = c.post("/v1/classify", json={"query": "What is 15% of 200?"}).json()
        assert body["index_version"] == good and body["route"] == "maths"


def test_version_with_a_damaged_route_table_is_not_served_and_following_goes_on(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """A manifest that parses but whose route table is broken (no default agent) leaves the
    service on the good version, names the problem in /readyz, releases the bad version, and
    the service still follows the next good re-index (the reload task survived)."""
    data = tmp_path / "data"
    good = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
    url = start_service(settings_for(routes_dir, data))
    bad = "v29990101t000000000000-deadbeef"
    bad_dir = data / "router" / "versions" / bad
    shutil.copytree(data / "router" / "versions" / good, bad_dir)
    manifest = json.loads((bad_dir / "manifest.json").read_text())
    manifest["version"] = bad
    del manifest["route_table"]["default_agent"]
    (bad_dir / "manifest.json").write_text(json.dumps(manifest))
    (data / "router" / "LIVE").write_text(bad + "\n")
    with httpx.Client(base_url=url, timeout=30) as c:
        wait_for(lambda: bad in reload_error(c))
        body = c.post("/v1/classify", json={"query": "What is 15% of 200?"}).json()
        assert body["index_version"] == good and body["route"] == "maths"
        assert "route table" in reload_error(c)
        (data / "router" / "LIVE").write_text(good + "\n")
        assert EdgeStore(data).drop_version(bad)  # no lock left behind on the refused version
        (routes_dir / "maths.yaml").write_text(
            (routes_dir / "maths.yaml").read_text().replace("examples:\n", "examples:\n  - integrate x squared\n", 1)
        )
        newer = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
        wait_for(lambda: c.post("/v1/classify", json={"query": "What is 15% of 200?"}).json()["index_version"] == newer)


def test_wrong_model_path_fails_clearly(tmp_path: Path) -> None:
    """A model path that does not exist raises ModelUnavailable naming it."""
    with pytest.raises(ModelUnavailable, match="no-such-model"):
        load_embedder(str(tmp_path / "no-such-model"))


@pytest.mark.slow
def test_service_command_with_wrong_model_exits_2(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> None:
    """`python -m service` with a wrong model path (strict model mode) exits 2 with a message."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    env = {
        **os.environ,
        "ROUTER_INDEX__DATA_DIR": str(data),
        "ROUTER_EMBEDDING__MODEL": str(tmp_path / "nope"),
        "ROUTER_FOLLOW_INDEX_MODEL": "false",
        "ROUTER_HTTP__PORT": str(free_port()),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "service"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2
    assert "cannot load embedding model" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_disk_full_during_reindex_keeps_live_version(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> None:
    """Writes failing as on a full disk (a 64 KiB file-size limit) leave the live version, no traceback."""
    data = tmp_path / "data"
    live = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
    (routes_dir / "maths.yaml").write_text(
        (routes_dir / "maths.yaml").read_text() + '  - "what is the cube root of 27"\n'
    )
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024)); "
        "from indexer.cli import main; sys.exit(main(['--routes', sys.argv[1], '--data-dir', sys.argv[2], '--quiet']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(routes_dir), str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "live index is unchanged" in proc.stderr and "Traceback" not in proc.stderr
    store = EdgeStore(data)
    assert store.live_version() == live and store.versions() == [live]
    assert not any((data / "router" / "staging").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["embedding", "writing version", "switching the live pointer"])
def test_killed_reindex_leaves_a_complete_live_version(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, phase: str
) -> None:
    """SIGKILL the indexer the moment it reports a phase (embedding, writing the new version,
    switching the pointer): LIVE names a complete version that opens and answers (the old one,
    or for the switch the old or the new one, never anything in between), no partial version is
    listed, and the next run cleans up and publishes."""
    data = tmp_path / "data"
    live = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
    many = "\n".join(f'  - "arithmetic drill number {i} for the killed reindex"' for i in range(3000))
    (routes_dir / "maths.yaml").write_text((routes_dir / "maths.yaml").read_text() + many + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "indexer", "--routes", str(routes_dir), "--data-dir", str(data), "--quiet"],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # each phase line arrives as it is printed
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("... ") and phase in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    store = EdgeStore(data)
    after = store.live_version()
    if phase == "switching the live pointer":
        assert after in store.versions() and live in store.versions()
    else:
        assert after == live and store.versions() == [live]
    opened = store.open_version(after)  # the live version is complete: it opens and answers
    try:
        [[nearest, *_]] = opened.searcher.search(embedder.encode_queries(["What is 15% of 200?"]), 5)
        assert nearest.route == "maths"
    finally:
        opened.close()
    report = run_reindex(load_routes(routes_dir), store, embedder)
    assert store.live_version() == report.version
    assert report.changed or after != live  # a killed switch may already have published it


@pytest.mark.slow
def test_a_second_admin_reindex_while_one_runs_is_409(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """Two admin re-indexes at once: one runs, the other is told 409 (already running), and the
    endpoint works again afterwards."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    url = start_service(settings_for(routes_dir, data))
    extra = "\n".join(f'  - "ledger reconciliation drill {i} for the busy reindex"' for i in range(300))
    (routes_dir / "maths.yaml").write_text((routes_dir / "maths.yaml").read_text() + extra + "\n")
    with httpx.Client(base_url=url, timeout=300) as c:
        results: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: results.append(c.post("/admin/reindex")))
        worker.start()
        while worker.is_alive():
            results.append(c.post("/admin/reindex"))
        worker.join()
        codes = sorted(r.status_code for r in results)
        busy = [r for r in results if r.status_code == 409]
        assert codes.count(200) >= 1 and busy, codes
        assert busy[0].json()["title"] == "Re-index already running"
        assert c.post("/admin/reindex").json()["changed"] is False


def test_leftovers_of_a_killed_build_are_cleared_by_a_later_build(
    tmp_path: Path, routes_dir: Path, embedder: Embedder
) -> None:
    """A staging directory untouched for the grace period (a build killed mid-write, an
    interrupted deletion) is removed by the next build; a recent one, possibly a build in
    progress in another process, is left alone."""
    data = tmp_path / "data"
    store = EdgeStore(data)
    run_reindex(load_routes(routes_dir), store, embedder)
    staging = data / "router" / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    dead, busy = staging / "v-killed.0000abcd", staging / "v-in-progress.1111abcd"
    for folder in (dead, busy):
        (folder / "shard").mkdir(parents=True)
        (folder / "vectors.npy").write_bytes(b"\0" * 1024)
    hour_ago = time.time() - 3600
    os.utime(dead, (hour_ago, hour_ago))
    (routes_dir / "maths.yaml").write_text(
        (routes_dir / "maths.yaml").read_text() + '  - "what is the cube root of 27"\n'
    )
    run_reindex(load_routes(routes_dir), store, embedder)
    assert not dead.exists()
    assert busy.exists()
