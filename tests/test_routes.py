"""Loading and validating a routes directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from devkit.serving import SHIPPED_ROUTES
from router_core import RoutesInvalid, load_routes
from router_core.agents import LLMAgent

ROUTE = """\
name: {name}
description: test route
agent:
  kind: canned
  name: {name}-agent
  reply: hi
examples:
{examples}
"""


def write_route(root: Path, name: str, examples: list[str], extra: str = "") -> Path:
    body = "\n".join(f"  - {e!r}" for e in examples)
    path = root / f"{name}.yaml"
    path.write_text(ROUTE.format(name=name, examples=body) + extra)
    return path


def problems(root: Path) -> list[str]:
    with pytest.raises(RoutesInvalid) as info:
        load_routes(root)
    return [str(p) for p in info.value.problems]


def test_shipped_routes_are_valid_and_rich() -> None:
    """The shipped set has coding, maths and 4+ more routes of >= 40 examples, plus a default agent."""
    table = load_routes(SHIPPED_ROUTES)
    names = {r.name for r in table.routes}
    assert {"coding", "maths"} <= names
    assert len(names) >= 6
    assert all(len(r.examples) >= 40 for r in table.routes)
    assert table.default_agent.kind == "canned"
    assert table.params.default_route not in names


def test_shipped_agents_name_keys_only_by_environment_variable() -> None:
    """No shipped agent carries a secret inline; keys are named by env var only."""
    for route in load_routes(SHIPPED_ROUTES).routes:
        assert "api_key" not in route.agent.model_dump()
        if isinstance(route.agent, LLMAgent) and route.agent.api_key_env:
            assert route.agent.api_key_env.isupper()


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    """Invalid YAML is reported with the file name and the position."""
    write_route(tmp_path, "ok", ["hello"])
    (tmp_path / "broken.yaml").write_text("name: broken\nexamples: [unclosed\n")
    [msg] = problems(tmp_path)
    assert msg.startswith("broken.yaml") and "invalid YAML at line" in msg


def test_unknown_field_is_an_error(tmp_path: Path) -> None:
    """An unknown key is reported with the file, the field and the reason."""
    write_route(tmp_path, "a", ["hello"], extra="colour: blue\n")
    assert problems(tmp_path) == ["a.yaml: colour: unknown field"]


def test_inline_api_key_is_rejected(tmp_path: Path) -> None:
    """A secret written into the agent block is refused (only api_key_env is allowed)."""
    (tmp_path / "a.yaml").write_text(
        "name: a\ndescription: d\nexamples: [x]\nagent:\n  kind: llm\n  name: a\n  model: m\n  api_key: sk-secret\n"
    )
    [msg] = problems(tmp_path)
    assert msg == "a.yaml: agent.api_key: unknown field"
    assert "sk-secret" not in msg


def test_missing_field_and_bad_types(tmp_path: Path) -> None:
    """Missing description and a threshold out of range are both reported."""
    (tmp_path / "a.yaml").write_text("name: a\nthreshold: 3\nexamples: [x]\nagent: {kind: canned, name: a, reply: r}\n")
    msgs = problems(tmp_path)
    assert any(m.startswith("a.yaml: description:") and "required" in m.lower() for m in msgs)
    assert any(m.startswith("a.yaml: threshold:") for m in msgs)


def test_empty_and_duplicate_examples(tmp_path: Path) -> None:
    """Blank examples and duplicates (case and spacing ignored) are errors."""
    write_route(tmp_path, "a", ["Hello there", "   ", "hello   THERE"])
    msgs = problems(tmp_path)
    assert "a.yaml: examples.1: empty example" in msgs
    assert any(m.startswith("a.yaml: examples.2: duplicate of examples.0") for m in msgs)


def test_same_utterance_under_two_routes_is_a_conflict(tmp_path: Path) -> None:
    """An utterance claimed by two routes is reported as a conflict naming both."""
    write_route(tmp_path, "a", ["reset my password"])
    write_route(tmp_path, "b", ["Reset my password"])
    [msg] = problems(tmp_path)
    assert "conflict" in msg and "'a'" in msg and msg.startswith("b.yaml")


def test_duplicate_route_names(tmp_path: Path) -> None:
    """Two files declaring the same route name are an error."""
    write_route(tmp_path, "a", ["one"])
    (tmp_path / "a.yml").write_text(ROUTE.format(name="a", examples="  - two"))
    assert any("duplicate route name 'a'" in m for m in problems(tmp_path))


def test_name_must_match_file(tmp_path: Path) -> None:
    """A route's name differing from its file name is reported."""
    (tmp_path / "x.yaml").write_text(ROUTE.format(name="y", examples="  - one"))
    assert problems(tmp_path) == ["x.yaml: name: route name 'y' must match the file name"]


def test_router_defaults_are_validated(tmp_path: Path) -> None:
    """_router.yaml is checked too: k must be positive, unknown keys refused."""
    write_route(tmp_path, "a", ["one"])
    (tmp_path / "_router.yaml").write_text("k: 0\nflavour: x\n")
    msgs = problems(tmp_path)
    assert any(m.startswith("_router.yaml: k:") for m in msgs)
    assert "_router.yaml: flavour: unknown field" in msgs


def test_default_route_must_not_shadow_a_route(tmp_path: Path) -> None:
    """The default route name cannot also be a real route."""
    write_route(tmp_path, "general", ["one"])
    (tmp_path / "_router.yaml").write_text("default_route: general\n")
    assert any("default_route" in m for m in problems(tmp_path))


def test_missing_or_empty_directory(tmp_path: Path) -> None:
    """A missing directory or one without route files is an error, not an empty router."""
    assert "does not exist" in problems(tmp_path / "nope")[0]
    assert "no route files" in problems(tmp_path)[0]


def test_follow_ups_file_is_loaded_cleaned(tmp_path: Path) -> None:
    """`_follow_ups.yaml` lists the route set's follow-ups: whitespace collapsed, order kept; it is
    no route file."""
    write_route(tmp_path, "ok", ["hello"])
    (tmp_path / "_follow_ups.yaml").write_text("follow_ups:\n  - 'yes  please'\n  - does it have wifi?\n")
    table = load_routes(tmp_path)
    assert table.follow_ups == ("yes please", "does it have wifi?")
    assert [r.name for r in table.routes] == ["ok"]
    assert table.to_dict()["follow_ups"] == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("follow_ups: yes please\n", "_follow_ups.yaml: follow_ups: Input should be a valid list"),
        ("follow_ups: []\nexamples: [a]\n", "_follow_ups.yaml: examples: unknown field"),
        ("follow_ups: ['  ', ok]\n", "_follow_ups.yaml: follow_ups.0: empty entry"),
        ("follow_ups: [ok, 'OK ']\n", "_follow_ups.yaml: follow_ups.1: duplicate of follow_ups.0: 'OK'"),
        (f"follow_ups: ['{'x' * 1001}']\n", "_follow_ups.yaml: follow_ups.0: longer than 1000 characters"),
        ("- a list\n", "_follow_ups.yaml: expected a mapping of fields at the top level"),
        ("follow_ups: [unclosed\n", "_follow_ups.yaml: invalid YAML at line"),
    ],
)
def test_a_bad_follow_ups_file_names_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    """Every problem of `_follow_ups.yaml` names the file, the entry and the reason; nothing loads."""
    write_route(tmp_path, "ok", ["hello"])
    (tmp_path / "_follow_ups.yaml").write_text(text)
    assert any(p.startswith(expected) for p in problems(tmp_path)), problems(tmp_path)


def test_more_follow_ups_than_the_limit_are_refused(tmp_path: Path) -> None:
    """At most MAX_FOLLOW_UPS entries: a larger file is refused, not truncated."""
    from router_core.follow_ups import MAX_FOLLOW_UPS

    write_route(tmp_path, "ok", ["hello"])
    lines = "".join(f"- f{i}\n" for i in range(MAX_FOLLOW_UPS + 1))
    (tmp_path / "_follow_ups.yaml").write_text("follow_ups:\n" + lines)
    assert any("_follow_ups.yaml: follow_ups" in p and "at most 20000" in p for p in problems(tmp_path))
