"""Importing labelled JSON Lines as a routes directory that every command accepts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from indexer.cli import main as indexer_main
from indexer.importer import write_routes_from_jsonl
from router_core import load_routes
from router_core.agents import CannedAgent
from tests.test_evaluation import write_jsonl

ROWS = [
    ("will it rain tomorrow", "weather"),
    ("how hot is it outside", "weather"),
    ("Will it   rain tomorrow", "weather"),  # duplicate once normalised
    ("why was my card declined", "Card Declined!"),
    ("my card got rejected at the store", "Card Declined!"),
    ("how hot is it outside", "Card Declined!"),  # already an example of weather
    ("tell me a joke", "oos"),
    ("x" * 1200, "weather"),  # longer than a route example may be
]


def test_labels_become_valid_routes(tmp_path: Path) -> None:
    """One route per label (sanitised names, canned `[label]` replies), oos left out, duplicates dropped."""
    source = write_jsonl(tmp_path / "train.jsonl", ROWS)
    count = write_routes_from_jsonl(source, tmp_path / "routes", threshold=0.5)
    assert count == 2
    table = load_routes(tmp_path / "routes")
    assert [r.name for r in table.routes] == ["card_declined", "weather"]
    weather = table.get("weather")
    assert weather is not None
    assert weather.examples == (
        "will it rain tomorrow",
        "how hot is it outside",
    )
    card = table.get("card_declined")
    assert card is not None
    assert len(card.examples) == 2
    assert card.agent == CannedAgent(name="card_declined-agent", reply="[Card Declined!]")
    assert table.params.threshold == 0.5
    assert table.params.default_route == "default"


def test_import_replaces_its_own_output_but_not_hand_written_routes(tmp_path: Path) -> None:
    """Re-importing into the same directory replaces the old files; a directory of other routes is refused."""
    source = write_jsonl(tmp_path / "train.jsonl", ROWS)
    target = tmp_path / "routes"
    write_routes_from_jsonl(source, target)
    write_routes_from_jsonl(write_jsonl(tmp_path / "small.jsonl", [("hi", "greet"), ("hello", "greet")]), target)
    assert [r.name for r in load_routes(target).routes] == ["greet"]
    (target / "mine.yaml").write_text("name: mine\n")
    with pytest.raises(FileExistsError, match="not written by the importer"):
        write_routes_from_jsonl(source, target)


def test_import_command_and_default_route_name_clash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`import` prints the next steps; a label called `default` pushes the default route to another name."""
    source = write_jsonl(tmp_path / "train.jsonl", [("a", "default"), ("b", "default"), ("c", "other")])
    out = io.StringIO()
    assert indexer_main(["import", str(source), "--out", str(tmp_path / "routes")], out=out) == 0
    assert "wrote 2 routes" in out.getvalue()
    routes, data = tmp_path / "routes", tmp_path / "routes-data"
    assert f"-m indexer reindex --routes {routes} --data-dir {data}" in out.getvalue()
    table = load_routes(tmp_path / "routes")
    assert table.params.default_route == "default_"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "a"}) + "\n")
    assert indexer_main(["import", str(bad), "--out", str(tmp_path / "x")], out=io.StringIO()) == 2
    assert "bad.jsonl line 1" in capsys.readouterr().err
