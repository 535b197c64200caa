"""The re-index job: idempotent, incremental, atomic, and its CLI."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydantic import ValidationError

from indexer.cli import main as indexer_main
from router_core import Embedder, RoutesInvalid, constants, load_routes, run_reindex
from router_core.conversation_words import IGNORED_WORDS
from router_core.settings import IndexSettings
from router_core.store import EdgeStore


def ids(store: EdgeStore) -> set[str]:
    live = store.live_version()
    assert live is not None
    return {p.id for p in store.stored_points(live).points}


def test_indexing_twice_gives_the_same_points(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> None:
    """A second run over unchanged routes embeds nothing and keeps the same version and points."""
    store = EdgeStore(tmp_path / "data")
    first = run_reindex(load_routes(routes_dir), store, embedder)
    before = ids(store)
    second = run_reindex(load_routes(routes_dir), store, embedder)
    assert first.changed and first.embedded == first.examples
    assert not second.changed and second.embedded == 0
    assert second.version == first.version
    assert ids(store) == before
    # A fresh store built from the same routes derives the same point ids (uuid5).
    other = EdgeStore(tmp_path / "other")
    run_reindex(load_routes(routes_dir), other, embedder)
    assert ids(other) == before


def test_removed_example_disappears_and_only_changes_are_embedded(
    tmp_path: Path, routes_dir: Path, embedder: Embedder
) -> None:
    """Removing one example and adding one re-embeds only the new one; the removed one is gone."""
    store = EdgeStore(tmp_path / "data")
    run_reindex(load_routes(routes_dir), store, embedder)
    maths = routes_dir / "maths.yaml"
    text = maths.read_text()
    removed = load_routes(routes_dir).get("maths").examples[0]  # type: ignore[union-attr]
    lines = [line for line in text.splitlines() if removed not in line]
    lines.append('  - "integrate x squared from zero to three"')
    maths.write_text("\n".join(lines) + "\n")
    report = run_reindex(load_routes(routes_dir), store, embedder)
    assert report.changed and report.embedded == 1
    assert report.reused == report.examples - 1
    live = store.live_version()
    assert live is not None
    texts = {p.text for p in store.stored_points(live).points}
    assert removed not in texts
    assert "integrate x squared from zero to three" in texts
    index = store.open_version(live)
    try:
        [hits] = index.searcher.search(embedder.encode_queries([removed]), 3)
        assert removed not in [h.text for h in hits]
    finally:
        index.close()


def test_old_versions_are_dropped_keeping_the_previous(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> None:
    """After three changes only the live and the previous version remain (keep_versions=2)."""
    store = EdgeStore(tmp_path / "data")
    versions = []
    for i in range(3):
        (routes_dir / "extra.yaml").write_text(
            f"name: extra\ndescription: d\nexamples: ['extra number {i}']\n"
            "agent: {kind: canned, name: extra, reply: r}\n"
        )
        versions.append(run_reindex(load_routes(routes_dir), store, embedder, keep_versions=2).version)
    assert store.versions() == versions[1:]
    assert store.live_version() == versions[2]


def test_bad_routes_file_changes_nothing(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> None:
    """A broken routes file fails validation and the live version stays exactly as it was."""
    data = tmp_path / "data"
    store = EdgeStore(data)
    live = run_reindex(load_routes(routes_dir), store, embedder).version
    snapshot = sorted(str(p.relative_to(data)) for p in data.rglob("*"))
    (routes_dir / "coding.yaml").write_text("name: coding\nexamples: [oops\n")
    out = io.StringIO()
    code = indexer_main(["--routes", str(routes_dir), "--data-dir", str(data), "--quiet"], out=out)
    assert code == 2
    assert store.live_version() == live
    assert sorted(str(p.relative_to(data)) for p in data.rglob("*")) == snapshot


def test_failed_write_leaves_live_version(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> None:
    """A failure while writing the new version (disk error) leaves the live version serving."""
    data = tmp_path / "data"
    store = EdgeStore(data)
    live = run_reindex(load_routes(routes_dir), store, embedder).version
    (routes_dir / "maths.yaml").write_text(
        (routes_dir / "maths.yaml").read_text() + '  - "what is the cube root of 27"\n'
    )
    staging = data / "router" / "staging"
    staging.rmdir()
    staging.write_text("not a directory")  # every write into staging/ now fails
    with pytest.raises(Exception, match=r"staging|exists|directory"):
        run_reindex(load_routes(routes_dir), store, embedder)
    assert store.live_version() == live
    assert store.versions() == [live]


@pytest.mark.slow
def test_cli_summary_and_dry_run(tmp_path: Path, routes_dir: Path) -> None:
    """The CLI prints a summary; --dry-run lists the changes and writes nothing."""
    data = tmp_path / "data"
    args = ["--routes", str(routes_dir), "--data-dir", str(data), "--quiet"]
    out = io.StringIO()
    assert indexer_main(args, out=out) == 0
    summary = out.getvalue()
    assert "published and live" in summary and "embedded" in summary and "reused 0" in summary
    store = EdgeStore(data)
    live = store.live_version()
    (routes_dir / "maths.yaml").write_text(
        (routes_dir / "maths.yaml").read_text() + '  - "what is the cube root of 27"\n'
    )
    (routes_dir / "coding.yaml").unlink()
    out = io.StringIO()
    assert indexer_main([*args, "--dry-run"], out=out) == 0
    plan = out.getvalue()
    assert "changed  maths: +1 example(s)" in plan
    assert "+ what is the cube root of 27" in plan
    assert "removed  coding" in plan
    untouched = [r.name for r in load_routes(routes_dir).routes if r.name != "maths"]
    assert untouched and not [name for name in untouched if f"changed  {name}" in plan], plan
    assert "nothing was written" in plan
    assert store.live_version() == live and store.versions() == [live]


def test_routes_invalid_lists_every_problem(routes_dir: Path) -> None:
    """Several broken files are all reported at once."""
    (routes_dir / "coding.yaml").write_text("name: coding\n")
    (routes_dir / "maths.yaml").write_text(": : :\n")
    with pytest.raises(RoutesInvalid) as info:
        load_routes(routes_dir)
    files = {p.file for p in info.value.problems}
    assert {"coding.yaml", "maths.yaml"} <= files


def test_keeping_fewer_than_two_versions_is_refused() -> None:
    """The previous version must survive a re-index: replicas may still serve it."""
    with pytest.raises(ValidationError, match="keep_versions"):
        IndexSettings(keep_versions=1)
    assert IndexSettings().keep_versions == 2


def test_a_version_records_the_constants_that_change_decisions(
    tmp_path: Path, routes_dir: Path, embedder: Embedder
) -> None:
    """Each version records the named constants of the conversation rule and the LLM step (its
    fingerprint with them): a changed word list would be a new version, not the same one."""
    store = EdgeStore(tmp_path / "data")
    table = load_routes(routes_dir)
    report = run_reindex(table, store, embedder)
    recorded = store.manifest(report.version).route_table["constants"]
    assert recorded == constants.recorded(IGNORED_WORDS)
    assert recorded["conversation.evidence_scale"] == constants.EVIDENCE_SCALE
    assert recorded["llm.max_message_chars"] == constants.MAX_MESSAGE_CHARS
    assert constants.recorded(IGNORED_WORDS - {"yes"}) != recorded  # the word list is in it, by hash
