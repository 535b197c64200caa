"""Index files and readiness: a version that cannot be opened (full file system), a read-only
data directory, a live pointer naming a missing version, two re-indexes at once, a re-index
that times out, and serving while an admin re-index embeds."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from devkit.routes_dirs import add_route
from devkit.serving import ROOT, free_port, serve, settings_for
from devkit.waiting import wait_for
from indexer.cli import main as indexer_main
from router_core import (
    Embedder,
    IndexBusy,
    IndexMissing,
    load_routes,
    run_reindex,
)
from router_core.embedding import Vectors
from router_core.store import EdgeStore
from service.app import create_app
from service.services import Services
from service.settings import LimitSettings
from tests.conftest import ServiceFactory

QUERY = {"query": "What is 15% of 200?"}
REINDEX_TAG = "serving-during-reindex"


def fresh_examples(n: int, tag: str) -> list[str]:
    """Examples no other test embedded (the session's model remembers what it saw)."""
    rng = random.Random(tag)
    words = ["quarterly", "invoice", "ledger", "audit", "payroll", "budget", "forecast", "expense", "tax"]
    return [f"{tag} {i} " + " ".join(rng.choice(words) for _ in range(6)) for i in range(n)]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str, int], Path]]:
    """Mount small tmpfs file systems (needs root); unmounted at the end."""
    mounted: list[Path] = []

    def mount(name: str, size_mb: int) -> Path:
        point = tmp_path / name
        point.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(point)], capture_output=True, check=False
        )
        if proc.returncode != 0:
            why = f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}"
            if os.environ.get("ROUTER_TEST_REQUIRE_TMPFS") == "1":  # set by .ci/run: CI runs as root
                pytest.fail(f"{why} (ROUTER_TEST_REQUIRE_TMPFS=1: the full-disk tests must run here)")
            pytest.skip(why)
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(point: Path, leave: int) -> None:
    """Take all free space of the file system at `point` but `leave` bytes."""
    stats = os.statvfs(point)
    free = stats.f_bavail * stats.f_frsize
    with (point / "filler").open("wb") as fh:
        os.posix_fallocate(fh.fileno(), 0, max(1, free - leave))


# -- item 14: a version that cannot be opened ----------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("scan", ["engine", "matrix"])
def test_a_version_that_would_die_of_sigbus_is_refused_and_the_last_good_one_serves(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, tmpfs: Callable[[str, int], Path], scan: str
) -> None:
    """On a nearly full tmpfs, with the engine's search, a new version whose shard needs space to
    open is refused with a reason in /readyz while the service keeps serving the last good
    version (it used to die of SIGBUS); a replica started then refuses to start with the reason
    (it used to exit 135). The matrix scan (the default) reads the version's vectors into memory
    and never maps the shard: it serves the new version."""
    disk = tmpfs("disk", 80)
    data = disk / "data"
    good = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")},
        "ROUTER_ROUTES_DIR": str(routes_dir),
        "ROUTER_INDEX__DATA_DIR": str(data),
        "ROUTER_INDEX__MODELS_DIR": os.environ["ROUTER_INDEX__MODELS_DIR"],  # the export is not on the full disk
        "ROUTER_HTTP__PORT": str(port),
        "ROUTER_RELOAD_INTERVAL_S": "0.2",
        "ROUTER_LOG__JSON_FORMAT": "false",
        # One process: /readyz below must come from the process that refused the version (with
        # several workers each refuses it on its own next poll, and answers may alternate).
        "ROUTER_HTTP__WORKERS": "1",
        "ROUTER_INDEX__SCAN": scan,
    }
    log = (tmp_path / "service.log").open("wb")
    service = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env, stderr=log, stdout=log)
    try:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz").status_code == 200
            except httpx.HTTPError:
                assert service.poll() is None, "the service exited during start-up"
                return False

        wait_for(ready, 180, "the service to start")
        # A second version, built elsewhere on the same file system and moved in (no space needed).
        add_route(routes_dir, "payroll", fresh_examples(5, "sigbus"))
        other = disk / "other"
        newer = run_reindex(load_routes(routes_dir), EdgeStore(other), embedder).version
        (other / "router" / "versions" / newer).rename(data / "router" / "versions" / newer)
        fill(disk, leave=256 * 1024)
        EdgeStore(data).activate(newer)

        def refused() -> bool:
            assert service.poll() is None, f"the service died (exit {service.returncode})"
            return newer in httpx.get(f"{url}/readyz").json()["checks"].get("reload_error", "")

        def served() -> bool:
            assert service.poll() is None, f"the service died (exit {service.returncode})"
            return bool(httpx.post(f"{url}/v1/classify", json=QUERY).json()["index_version"] == newer)

        if scan == "matrix":
            wait_for(served, 60, "the new version to be served")
            assert "reload_error" not in httpx.get(f"{url}/readyz").json()["checks"]
            return
        wait_for(refused, 60, "the new version to be refused")
        checks = httpx.get(f"{url}/readyz").json()["checks"]
        assert "a trial open in a child process died of SIGBUS" in checks["reload_error"]
        body = httpx.post(f"{url}/v1/classify", json=QUERY).json()
        assert body["index_version"] == good and body["route"] == "maths"
        assert service.poll() is None
    finally:
        service.terminate()
        service.wait(timeout=60)
        log.close()
    restart = subprocess.run(
        [sys.executable, "-m", "service"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert restart.returncode == 2, restart.stderr[-2000:]
    assert newer in restart.stderr and "died of SIGBUS" in restart.stderr


# -- item 15: a read-only data directory -----------------------------------------------------------
@pytest.mark.parametrize("scan", ["matrix", "engine"])
def test_a_read_only_data_directory_is_served(
    tmp_path: Path,
    routes_dir: Path,
    embedder: Embedder,
    tmpfs: Callable[[str, int], Path],
    monkeypatch: pytest.MonkeyPatch,
    scan: str,
) -> None:
    """A replica on a read-only volume serves its index: its vectors read where they are (the
    matrix scan), or from a private copy of each shard in the temporary directory, removed when
    the version is closed (the engine's search); nothing is written to the volume."""
    volume = tmpfs("volume", 100)
    data = volume / "data"
    version = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
    subprocess.run(["mount", "-o", "remount,ro", str(volume)], check=True)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    settings = settings_for(routes_dir, data)
    settings = settings.model_copy(update={"index": settings.index.model_copy(update={"scan": scan})})
    services = Services.build(settings, embedder=embedder)
    with serve(create_app(services=services)) as url:
        body = httpx.post(f"{url}/v1/classify", json=QUERY).json()
        assert body["index_version"] == version and body["route"] == "maths"
        assert httpx.get(f"{url}/readyz").status_code == 200
        copied = any(p.name.startswith(f"router-{version}-") for p in scratch.iterdir())
        assert copied == (scan == "engine")
    assert not any(p.name.startswith("router-") for p in scratch.iterdir())  # the copy went with the version


# -- item 16: LIVE naming a missing version -------------------------------------------------------
def test_live_pointer_to_a_missing_version_is_reported(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """LIVE naming a version that does not exist: the running service keeps serving and says so
    in /readyz; a new replica refuses to start naming it; the next re-index repairs it."""
    data = tmp_path / "data"
    good = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
    url = start_service(settings_for(routes_dir, data))
    missing = "v29990101t000000000000-0badf00d"
    (data / "router" / "LIVE").write_text(missing + "\n")

    def reported() -> bool:
        return missing in httpx.get(f"{url}/readyz").json()["checks"].get("reload_error", "")

    wait_for(reported, 30, "/readyz to report the missing version")
    assert httpx.post(f"{url}/v1/classify", json=QUERY).json()["index_version"] == good
    with pytest.raises(IndexMissing, match=missing):
        Services.build(settings_for(routes_dir, data), embedder=embedder)
    repaired = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    assert repaired.changed and EdgeStore(data).live_version() == repaired.version
    wait_for(lambda: "reload_error" not in httpx.get(f"{url}/readyz").json()["checks"], 30, "the error to clear")


def test_the_cli_reindex_repairs_a_live_pointer_to_a_missing_version(
    tmp_path: Path, routes_dir: Path, embedder: Embedder
) -> None:
    """The re-index the message asks for, run as the CLI: with LIVE naming a missing version,
    `indexer --dry-run` plans a full build and `indexer reindex` publishes a version, points LIVE
    at it and a new replica starts (it used to refuse with the same error as the service)."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    missing = "v29990101t000000000000-0badf00d"
    (data / "router" / "LIVE").write_text(missing + "\n")
    with pytest.raises(IndexMissing, match="re-index to publish a new version"):
        Services.build(settings_for(routes_dir, data), embedder=embedder)
    where = ["--routes", str(routes_dir), "--data-dir", str(data), "--quiet"]
    out = io.StringIO()
    assert indexer_main([*where, "--dry-run", "reindex"], out=out, embedder=embedder) == 0, out.getvalue()
    assert "nothing was written" in out.getvalue()
    assert (data / "router" / "LIVE").read_text().strip() == missing
    out = io.StringIO()
    assert indexer_main([*where, "reindex"], out=out, embedder=embedder) == 0, out.getvalue()
    live = EdgeStore(data).live_version()
    assert live is not None and live != missing and f"version {live}: published and live" in out.getvalue()
    services = Services.build(settings_for(routes_dir, data), embedder=embedder)
    try:
        assert services.routes.follower.current.version == live
    finally:
        services.routes.follower.close()
        services.routes.store.close()


# -- item 17: two re-indexes at once -------------------------------------------------------------
def test_a_second_reindex_of_the_same_index_is_refused_truthfully(
    tmp_path: Path, routes_dir: Path, embedder: Embedder
) -> None:
    """While one re-index holds the index, another (in process or `python -m indexer`) is
    refused, says so, claims nothing and changes nothing."""
    data = tmp_path / "data"
    store = EdgeStore(data)
    live = run_reindex(load_routes(routes_dir), store, embedder).version
    add_route(routes_dir, "payroll", fresh_examples(3, "busy"))
    with store.writing():
        with pytest.raises(IndexBusy, match="another re-index"):
            run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
        proc = subprocess.run(
            [sys.executable, "-m", "indexer", "--routes", str(routes_dir), "--data-dir", str(data), "--quiet"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "another re-index is writing" in proc.stderr and "published" not in proc.stdout
    assert store.live_version() == live and store.versions() == [live]


def test_a_reindex_superseded_by_another_says_so(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> None:
    """A re-index whose version another job replaced as soon as it let go of the index reports
    that (the command prints 'published, but not live') instead of 'published and live'."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    other_routes = tmp_path / "other-routes"
    shutil.copytree(routes_dir, other_routes)
    add_route(other_routes, "audit", fresh_examples(3, "other-job"))

    class RacedStore(EdgeStore):
        """The store as one job sees it when another job takes the index the moment it lets go."""

        @contextlib.contextmanager
        def writing(self) -> Iterator[None]:
            with super().writing():
                yield
            run_reindex(load_routes(other_routes), EdgeStore(data), embedder)

    add_route(routes_dir, "payroll", fresh_examples(3, "this-job"))
    mine = run_reindex(load_routes(routes_dir), RacedStore(data), embedder)
    assert mine.changed and mine.superseded
    assert mine.live_after == EdgeStore(data).live_version() != mine.version


# -- item 2: a re-index that times out releases the endpoint -----------------------------------------
class GatedEmbedder:
    """The session model, holding every encode of texts tagged `tag` until `release` is set: the
    test decides when a re-index ends, so timing out is not a race against the machine's speed."""

    def __init__(self, inner: Embedder, tag: str) -> None:
        self.inner, self.tag = inner, tag
        self.model_id, self.dimension, self.source, self.backend = (
            inner.model_id,
            inner.dimension,
            inner.source,
            inner.backend,
        )
        self.release = threading.Event()

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        return self.inner.encode_queries(texts, batch_size=batch_size, progress=progress)

    def encode_documents(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        if any(t.startswith(self.tag) for t in texts):
            assert self.release.wait(120), "the test never released the gated re-index"
        return self.inner.encode_documents(texts, batch_size=batch_size, progress=progress)


@pytest.mark.slow
def test_a_reindex_that_times_out_releases_the_endpoint(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> None:
    """Past ROUTER_LIMITS__REINDEX_TIMEOUT_S the admin re-index answers 504; the endpoint is
    not stuck: while the job still runs a new one is refused (409: the index is busy), and once
    it ends the next call succeeds and its version is served."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    gated = GatedEmbedder(embedder, "timeout")
    settings = settings_for(routes_dir, data, limits=LimitSettings(reindex_timeout_s=0.5))
    add_route(routes_dir, "payroll", fresh_examples(50, "timeout"))
    app = create_app(services=Services.build(settings, embedder=gated))
    with serve(app) as url, httpx.Client(base_url=url, timeout=120) as c:
        try:
            first = c.post("/admin/reindex")
            assert first.status_code == 504 and "goes on in the background" in first.json()["detail"]
            busy = c.post("/admin/reindex")
            assert busy.status_code == 409 and "another re-index is writing" in busy.json()["detail"]
            assert "payroll" not in c.get("/v1/routes").text  # still serving the old version
        finally:
            gated.release.set()
        wait_for(lambda: "payroll" in c.get("/v1/routes").text, 120, "the background re-index to go live")
        assert c.post("/admin/reindex").status_code != 409  # the endpoint runs again
        assert 'router_reindex_total{outcome="timeout",route_set="default"} 1.0' in c.get("/metrics").text


# -- item 19: serving while an admin re-index embeds ---------------------------------------------
class TimedEmbedder:
    """The session model, recording when each encode call starts and ends (in one sequence)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id, self.dimension, self.source, self.backend = (
            inner.model_id,
            inner.dimension,
            inner.source,
            inner.backend,
        )
        self.calls: list[tuple[str, int, int]] = []  # (what, start tick, end tick)
        self._ticks = itertools.count()
        self._lock = threading.Lock()

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        return self._timed(self.inner.encode_queries, texts, batch_size)

    def encode_documents(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        return self._timed(self.inner.encode_documents, texts, batch_size)

    def _timed(self, encode: Callable[..., Vectors], texts: Sequence[str], batch_size: int) -> Vectors:
        with self._lock:
            start = next(self._ticks)
        vectors = encode(texts, batch_size=batch_size)
        with self._lock:
            what = "reindex" if any(REINDEX_TAG in t for t in texts) else "query"
            self.calls.append((what, start, next(self._ticks)))
        return vectors


@pytest.mark.slow
def test_classify_is_answered_while_an_admin_reindex_embeds(
    tmp_path: Path, routes_dir: Path, embedder: Embedder
) -> None:
    """An admin re-index of 400 new examples shares the served model: query forward passes run
    between its slices (a query's encode starts and ends inside the re-index's encode), instead
    of waiting for the whole re-index."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    timed = TimedEmbedder(embedder)
    services = Services.build(settings_for(routes_dir, data), embedder=timed)
    add_route(routes_dir, "payroll", fresh_examples(400, REINDEX_TAG))
    with serve(create_app(services=services)) as url:
        result: dict[str, int] = {}
        worker = threading.Thread(
            target=lambda: result.update(code=httpx.post(f"{url}/admin/reindex", timeout=600).status_code)
        )
        worker.start()
        answered = 0
        n = 0
        while worker.is_alive():
            n += 1
            r = httpx.post(f"{url}/v1/classify", json={"query": f"What is {n}% of 200? (serving {n})"}, timeout=600)
            answered += r.status_code == 200
        worker.join()
    assert result["code"] == 200 and answered > 0
    reindex = [(s, e) for name, s, e in timed.calls if name == "reindex"]
    queries = [(s, e) for name, s, e in timed.calls if name == "query"]
    assert len(reindex) > 1  # encoded in slices
    first, last = min(s for s, _ in reindex), max(e for _, e in reindex)
    assert any(first < s and e < last for s, e in queries), "no query was embedded during the re-index"
