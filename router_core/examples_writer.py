"""Add examples to a route file and labelled lines to an evaluation file, keeping the rest.

A route's new examples go after its last example, one line each in the list's own indentation
and as double-quoted YAML strings, so comments, key order and formatting survive; a file whose
`examples` the line edit cannot extend (flow style, say) is rewritten whole instead, and the
edit says so. Every change is computed first (`plan_examples`, `plan_labelled`: the file's text
before and after, and a unified diff to show), then written (`apply`), and a routes directory
that no longer loads afterwards is restored.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from router_core.errors import RouterError
from router_core.route_policy import RoutePolicy
from router_core.routes import load_routes
from router_core.routes_writer import replace_file, route_file

_EXAMPLES_KEY = re.compile(r"^examples[ \t]*:[ \t]*(#.*)?$")
_ITEM = re.compile(r"^(?P<indent>[ \t]*)-(?P<gap>[ \t]+)")


class EditRefused(RouterError):
    """A change that would not be made: the message says why (nothing was written)."""


@dataclass(frozen=True)
class FileEdit:
    """One file's text before and after a change, and the diff to show before saving."""

    path: Path
    label: str  # how the diff names the file (routes/maths.yaml, evals/reviewed.jsonl)
    before: str | None
    after: str
    rewritten: bool = False  # the line edit failed: the whole file was re-serialised (comments lost)
    added: tuple[str, ...] = ()  # what the change adds (examples, or texts of labelled lines)

    @property
    def diff(self) -> str:
        """A unified diff of the change."""
        return "".join(
            difflib.unified_diff(
                (self.before or "").splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"a/{self.label}",
                tofile=f"b/{self.label}",
            )
        )

    @property
    def changed(self) -> bool:
        """The file would change."""
        return self.after != self.before


def plan_examples(
    routes_dir: Path | str, route: str, texts: Sequence[str], policy: RoutePolicy | None = None
) -> FileEdit:
    """The route file with `texts` added as examples of `route` (those it already holds are
    skipped); EditRefused for an unknown route or a text that is another route's example."""
    root = Path(routes_dir)
    table = load_routes(root, policy)
    if route not in {r.name for r in table.routes}:
        raise EditRefused(
            f"{route!r} is not a route with examples (the default route {table.params.default_route!r} has none); "
            f"choose one of {', '.join(r.name for r in table.routes)}"
        )
    elsewhere = {e: r.name for r in table.routes if r.name != route for e in r.examples}
    own = set(next(r for r in table.routes if r.name == route).examples)
    wanted = [t for t in dict.fromkeys(" ".join(t.split()) for t in texts) if t and t not in own]
    for text in wanted:
        if text in elsewhere:
            raise EditRefused(f"{text!r} is already an example of route {elsewhere[text]!r}")
    path = route_file(root, route)
    before = path.read_text(encoding="utf-8")
    if not wanted:
        return FileEdit(path, f"{root.name}/{path.name}", before, before)
    after, whole = _append_examples(before, wanted)
    return FileEdit(path, f"{root.name}/{path.name}", before, after, whole, tuple(wanted))


def plan_labelled(path: Path, rows: Sequence[tuple[str, str]]) -> FileEdit:
    """The JSON Lines file with `{"text", "label"}` rows appended (texts already in it skipped)."""
    before = path.read_text(encoding="utf-8") if path.exists() else None
    present = set()
    for line in (before or "").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("text"), str):
            present.add(" ".join(row["text"].split()))
    new = [
        (text, label)
        for text, label in dict.fromkeys((" ".join(t.split()), lb) for t, lb in rows)
        if text not in present
    ]
    lines = [json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n" for text, label in new]
    head = before or ""
    if head and not head.endswith("\n"):
        head += "\n"
    after = head + "".join(lines) if lines else (before or "")
    return FileEdit(path, f"{path.parent.name}/{path.name}", before, after, added=tuple(t for t, _ in new))


def apply(edit: FileEdit, *, routes_dir: Path | None = None, policy: RoutePolicy | None = None) -> None:
    """Write the edit; with `routes_dir`, restore the file when the directory no longer loads.
    Refused when the file changed since the edit was planned."""
    if not edit.changed:
        return
    current = edit.path.read_text(encoding="utf-8") if edit.path.exists() else None
    if current != edit.before:
        raise EditRefused(f"{edit.label} changed since the change was shown; review it again")
    edit.path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(edit.path, edit.after)
    if routes_dir is None:
        return
    try:
        load_routes(routes_dir, policy)
    except BaseException:
        if edit.before is None:
            edit.path.unlink(missing_ok=True)
        else:
            replace_file(edit.path, edit.before)
        raise


def _append_examples(text: str, examples: Sequence[str]) -> tuple[str, bool]:
    """The file with `examples` after the last one, and whether it had to be rewritten whole."""
    data: dict[str, Any] = yaml.safe_load(text) or {}
    wanted = {**data, "examples": [*(data.get("examples") or []), *examples]}
    edited = _line_edit(text, examples)
    try:
        if edited is not None and yaml.safe_load(edited) == wanted:
            return edited, False
    except yaml.YAMLError:
        pass
    return yaml.safe_dump(wanted, sort_keys=False, allow_unicode=True, width=1000), True


def _line_edit(text: str, examples: Sequence[str]) -> str | None:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if _EXAMPLES_KEY.match(line.rstrip("\r\n"))), None)
    if start is None:
        if any(line.startswith("examples") for line in lines):
            return None  # `examples: [...]` or another layout: let the caller rewrite
        return "".join([*lines, "examples:\n", *(f"  - {_quoted(e)}\n" for e in examples)])
    last, prefix = start, "  - "
    for i in range(start + 1, len(lines)):
        body = lines[i].rstrip("\r\n")
        if not body.strip() or body.lstrip().startswith("#"):
            continue
        item = _ITEM.match(body)
        if item is not None:
            last, prefix = i, f"{item['indent']}-{item['gap']}"
        elif body[:1] in (" ", "\t"):
            last = i  # a continuation of the previous item
        else:
            break  # the next top-level key
    eol = "\r\n" if lines[last].endswith("\r\n") else "\n"
    added = [f"{prefix}{_quoted(e)}{eol}" for e in examples]
    return "".join([*lines[: last + 1], *added, *lines[last + 1 :]])


def _quoted(text: str) -> str:
    """A double-quoted YAML scalar (JSON's escapes are YAML's)."""
    return json.dumps(text, ensure_ascii=False)
