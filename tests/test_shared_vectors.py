"""The message vectors the worker processes share (`service.routing.shared_vectors`): what one
worker stores another reads; a slot being rewritten, a damaged one or a table of another layout
reads as a miss, never as a wrong vector; a directory that is not the service's own is not used."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from devkit.serving import ROOT
from service.routing.caches import VectorCache
from service.routing.shared_vectors import (
    HEADER,
    PID_FILE,
    SECRET_FILE,
    WAYS,
    SharedVectors,
    make_shared_dir,
    open_shared_dir,
    remove_stale,
)

DIM = 8
MODEL = "test-model"


def vector_of(text: str, dim: int = DIM) -> np.ndarray:
    """A unit vector that only `text` has."""
    rng = np.random.default_rng(zlib.crc32(text.encode()))  # the same in every process
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_what_one_worker_stores_another_reads(tmp_path: Path) -> None:
    folder = make_shared_dir(tmp_path)
    first, second = open_shared_dir(str(folder), 64), open_shared_dir(str(folder), 64)
    assert first is not None and second is not None
    texts = ["book a table for two", "and for tomorrow?", "thanks"]
    assert second.get(MODEL, DIM, texts) == [None, None, None]
    first.put(MODEL, texts, np.stack([vector_of(t) for t in texts]))
    for text, got in zip(texts, second.get(MODEL, DIM, texts), strict=True):
        assert got is not None and np.array_equal(got, vector_of(text))
    assert second.has(MODEL, DIM, "thanks") and not second.has(MODEL, DIM, "no thanks")
    # another model (or length) is another table: nothing shared with it
    assert second.get("other-model", DIM, texts) == [None, None, None]
    assert second.get(MODEL, 16, texts) == [None, None, None]


def test_a_full_table_drops_entries_but_never_answers_a_wrong_vector(tmp_path: Path) -> None:
    shared = open_shared_dir(str(make_shared_dir(tmp_path)), 2 * WAYS)  # two buckets of WAYS slots
    assert shared is not None
    texts = [f"message number {i}" for i in range(200)]
    shared.put(MODEL, texts, np.stack([vector_of(t) for t in texts]))
    got = shared.get(MODEL, DIM, texts)
    kept = [t for t, v in zip(texts, got, strict=True) if v is not None]
    assert 0 < len(kept) <= 2 * WAYS
    assert all(np.array_equal(v, vector_of(t)) for t, v in zip(texts, got, strict=True) if v is not None)


def test_a_damaged_slot_reads_as_a_miss(tmp_path: Path) -> None:
    folder = make_shared_dir(tmp_path)
    shared = open_shared_dir(str(folder), 8)
    assert shared is not None
    shared.put(MODEL, ["hello"], vector_of("hello")[None, :])
    table = next(folder.glob("vectors-*.bin"))
    raw = bytearray(table.read_bytes())
    vectors_start = raw.find(vector_of("hello").tobytes())
    assert vectors_start > HEADER
    raw[vectors_start] ^= 0xFF  # half a rewrite: the vector no longer matches its check
    table.write_bytes(bytes(raw))
    assert open_shared_dir(str(folder), 8).get(MODEL, DIM, ["hello"]) == [None]  # type: ignore[union-attr]


def test_a_table_of_another_layout_is_not_used(tmp_path: Path) -> None:
    folder = make_shared_dir(tmp_path)
    SharedVectors(folder, (folder / SECRET_FILE).read_bytes(), 64).put(MODEL, ["x"], vector_of("x")[None, :])
    smaller = open_shared_dir(str(folder), 8)  # another size, same file name: refused, no error
    assert smaller is not None
    assert smaller.get(MODEL, DIM, ["x"]) == [None]
    smaller.put(MODEL, ["y"], vector_of("y")[None, :])  # nothing written, nothing raised
    assert open_shared_dir(str(folder), 64).get(MODEL, DIM, ["y"]) == [None]  # type: ignore[union-attr]


def test_a_directory_that_is_not_the_services_own_is_not_used(tmp_path: Path) -> None:
    assert open_shared_dir(None, 8) is None and open_shared_dir("", 8) is None
    assert open_shared_dir(str(tmp_path / "missing"), 8) is None
    open_to_all = make_shared_dir(tmp_path)
    open_to_all.chmod(0o755)
    assert open_shared_dir(str(open_to_all), 8) is None
    no_key = make_shared_dir(tmp_path)
    (no_key / SECRET_FILE).unlink()
    assert open_shared_dir(str(no_key), 8) is None
    link = tmp_path / "link"
    link.symlink_to(make_shared_dir(tmp_path))
    assert open_shared_dir(str(link), 8) is None


def test_the_vector_cache_embeds_only_what_no_worker_has(tmp_path: Path) -> None:
    """Two workers' caches over one shared table: the second embeds nothing the first did."""

    class Model:
        model_id, dimension = MODEL, DIM

        def __init__(self) -> None:
            self.encoded: list[str] = []

    def encode_with(model: Model):
        def encode(texts: list[str]) -> np.ndarray:
            model.encoded += texts
            return np.stack([vector_of(t) for t in texts])

        return encode

    folder = make_shared_dir(tmp_path)
    a, b = Model(), Model()
    first = VectorCache(100, open_shared_dir(str(folder), 100))
    second = VectorCache(100, open_shared_dir(str(folder), 100))
    history = [f"turn {i}" for i in range(11)]
    _, embedded = first.vectors(a, [*history, "a query"], encode_with(a), shared=set(history))  # type: ignore[arg-type]
    assert embedded == 12
    chat = [*history, "the new message"]
    rows, embedded = second.vectors(b, chat, encode_with(b), shared=set(chat))  # type: ignore[arg-type]
    assert embedded == 1 and b.encoded == ["the new message"]
    assert np.array_equal(rows, np.stack([vector_of(t) for t in chat]))
    assert second.has(MODEL, DIM, "turn 3") and not VectorCache(100).has(MODEL, DIM, "turn 3")
    # a single query stays out of the shared table: another worker embeds it again
    _, embedded = second.vectors(b, ["a query"], encode_with(b), shared=set())  # type: ignore[arg-type]
    assert embedded == 1
    third = VectorCache(100, open_shared_dir(str(folder), 100))
    assert third.has(MODEL, DIM, "turn 3") and not third.has(MODEL, DIM, "a query")


@pytest.mark.slow
def test_workers_writing_while_others_read_never_read_a_wrong_vector(tmp_path: Path) -> None:
    """A process rewriting a small table as fast as it can while this one reads it: every
    vector read is the one of its text (slots caught mid-rewrite read as misses)."""
    folder = make_shared_dir(tmp_path)
    writer = textwrap.dedent(
        f"""
        import time, numpy as np
        from service.routing.shared_vectors import open_shared_dir
        from tests.test_shared_vectors import vector_of
        shared = open_shared_dir({str(folder)!r}, {2 * WAYS})
        texts = [f"text {{i}}" for i in range(40)]
        rows = np.stack([vector_of(t) for t in texts])
        end = time.monotonic() + 3
        while time.monotonic() < end:
            for i in range(0, 40, 4):
                shared.put("{MODEL}", texts[i : i + 4], rows[i : i + 4])
        """
    )
    process = subprocess.Popen([sys.executable, "-c", writer], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        shared = open_shared_dir(str(folder), 2 * WAYS)
        assert shared is not None
        texts = [f"text {i}" for i in range(40)]
        hits = reads = 0
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            for text, got in zip(texts, shared.get(MODEL, DIM, texts), strict=True):
                reads += 1
                if got is not None:
                    hits += 1
                    assert np.array_equal(got, vector_of(text)), text
        assert hits > 0 and reads > hits  # both: stored vectors found, and slots changing under the reader
    finally:
        process.wait(timeout=30)
    assert process.returncode == 0


def test_a_killed_supervisors_directory_is_removed_by_the_next_one(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True
    )
    stale = make_shared_dir(tmp_path)
    (stale / PID_FILE).write_text(gone.stdout.strip())  # a supervisor that has exited
    running = make_shared_dir(tmp_path)  # this process: running
    assert not stale.exists() and running.exists()
    assert remove_stale(tmp_path) == [] and running.exists()


def test_any_text_has_a_key(tmp_path: Path) -> None:
    """Texts that cannot be encoded as strict UTF-8 (a lone surrogate) are stored and read too."""
    shared = open_shared_dir(str(make_shared_dir(tmp_path)), 8)
    assert shared is not None
    odd = "a\ud800b"
    shared.put(MODEL, [odd], vector_of("odd")[None, :])
    got = shared.get(MODEL, DIM, [odd])[0]
    assert got is not None and np.array_equal(got, vector_of("odd"))


def test_asking_whether_a_text_is_stored_never_makes_a_table(tmp_path: Path) -> None:
    """`has` runs on the event loop: it opens a table another worker made, never makes one
    (making one reserves its whole space)."""
    folder = make_shared_dir(tmp_path)
    asking, storing = open_shared_dir(str(folder), 64), open_shared_dir(str(folder), 64)
    assert asking is not None and storing is not None
    assert not asking.has(MODEL, DIM, "hello")
    assert list(folder.glob("vectors-*.bin")) == []
    storing.put(MODEL, ["hello"], vector_of("hello")[None, :])
    assert asking.has(MODEL, DIM, "hello") and not asking.has(MODEL, DIM, "goodbye")
