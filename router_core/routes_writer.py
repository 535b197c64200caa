"""Write calibrated decision parameters back into a routes directory, keeping the rest.

Only the lines of the keys being set are touched (the tunable decision parameters at the top
level of `_router.yaml`, see `router_core.params`; `threshold` in each route file),
so comments, order and formatting survive. Every edited file is re-parsed and compared with
what was meant; a file whose layout defeats line editing (flow style, say) is rewritten whole
instead and reported.
If the directory does not load afterwards, every file is restored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from router_core.follow_ups import FOLLOW_UPS_FILE
from router_core.params import TUNABLE_NAMES, ConversationParams, DecisionParams, LLMRoutingParams
from router_core.replies import REPLIES_FILE, Reply
from router_core.route_policy import RoutePolicy
from router_core.routes import ROUTER_FILE, load_routes

ROUTER_KEYS = TUNABLE_NAMES


@dataclass(frozen=True)
class WriteReport:
    """Which files changed, and which had to be rewritten whole (comments lost)."""

    changed: tuple[str, ...]
    rewritten: tuple[str, ...]


def write_decision_params(
    routes_dir: Path | str, params: DecisionParams, policy: RoutePolicy | None = None
) -> WriteReport:
    """Set the router defaults and every route's own threshold (removed where it has none)."""
    root = Path(routes_dir)
    table = load_routes(root, policy)  # refuse to edit a directory that does not load now
    edits: dict[Path, dict[str, Any]] = {
        root / ROUTER_FILE: {
            name: _number(value) if isinstance(value, float) else value
            for name, value in params.tunable_values().items()
        }
    }
    for route in table.routes:
        value = params.route_thresholds.get(route.name)
        edits[route_file(root, route.name)] = {"threshold": None if value is None else _number(value)}
    originals: dict[Path, str | None] = {}
    changed: list[str] = []
    rewritten: list[str] = []
    try:
        for path, values in edits.items():
            before = path.read_text(encoding="utf-8") if path.exists() else None
            after, whole = _edit(before, values)
            if after == before:
                continue
            originals[path] = before
            replace_file(path, after)
            changed.append(path.name)
            if whole:
                rewritten.append(path.name)
        load_routes(root, policy)
    except BaseException:
        for path, text in originals.items():
            if text is None:
                path.unlink(missing_ok=True)
            else:
                replace_file(path, text)
        raise
    return WriteReport(tuple(changed), tuple(rewritten))


def write_conversation_params(
    routes_dir: Path | str,
    conversation: ConversationParams,
    *,
    threshold: float | None = None,
    policy: RoutePolicy | None = None,
) -> WriteReport:
    """Set `_router.yaml`'s conversation section (and, when given, the global threshold)."""
    extra = {} if threshold is None else {"threshold": _number(threshold)}
    return write_router_section(routes_dir, "conversation", conversation.to_dict(), policy=policy, **extra)


def write_follow_ups(
    routes_dir: Path | str, follow_ups: Sequence[str], *, policy: RoutePolicy | None = None
) -> WriteReport:
    """Replace `_follow_ups.yaml` with `follow_ups` (router_core.follow_ups); restored when the
    directory no longer loads."""
    header = (
        "# User messages that continue a conversation (router_core.follow_ups), learnt by\n"
        "# `python -m indexer calibrate` from a labelled conversation file; re-index to use them.\n"
    )
    return _write_learnt(routes_dir, FOLLOW_UPS_FILE, header, {"follow_ups": list(follow_ups)}, policy)


def write_replies(
    routes_dir: Path | str, replies: Sequence[Reply], *, policy: RoutePolicy | None = None
) -> WriteReport:
    """Replace `_replies.yaml` with `replies` (router_core.replies); restored when the directory
    no longer loads."""
    header = (
        "# Agent messages seen in conversations and how often the user's next message opened a\n"
        "# new topic (router_core.replies), learnt by `python -m indexer calibrate` from a labelled\n"
        "# conversation file; re-index to use them.\n"
    )
    entries = [{"text": r.text, "new_topic": r.new_topic, "same_topic": r.same_topic} for r in replies]
    return _write_learnt(routes_dir, REPLIES_FILE, header, {"replies": entries}, policy)


def _write_learnt(
    routes_dir: Path | str, name: str, header: str, content: Mapping[str, Any], policy: RoutePolicy | None
) -> WriteReport:
    """Replace the whole file `name` (what calibration learnt) with `header` and `content`, unless
    it already holds them; refused when the directory does not load now, restored when it no
    longer loads after."""
    root = Path(routes_dir)
    load_routes(root, policy)  # refuse to edit a directory that does not load now
    path = root / name
    after = header + yaml.safe_dump(dict(content), sort_keys=False, allow_unicode=True, width=1000)
    before = path.read_text(encoding="utf-8") if path.exists() else None
    if after == before:
        return WriteReport((), ())
    _replace_checked(root, path, after, before, policy)
    return WriteReport((path.name,), (path.name,))


def write_llm_params(routes_dir: Path | str, llm: LLMRoutingParams, policy: RoutePolicy | None = None) -> WriteReport:
    """Set `_router.yaml`'s llm section (the hybrid's band among it)."""
    return write_router_section(routes_dir, "llm", llm.to_dict(), policy=policy)


def write_router_section(
    routes_dir: Path | str,
    section: str,
    values: Mapping[str, Any],
    *,
    policy: RoutePolicy | None = None,
    **top_level: Any,
) -> WriteReport:
    """Set one section of `_router.yaml` (a mapping, written in flow style on one line when its
    line can be edited) and top-level keys; restored when the directory no longer loads."""
    root = Path(routes_dir)
    load_routes(root, policy)  # refuse to edit a directory that does not load now
    path = root / ROUTER_FILE
    edits: dict[str, Any] = {section: {k: _plain(v) for k, v in values.items()}, **top_level}
    before = path.read_text(encoding="utf-8") if path.exists() else None
    after, whole = _edit(before, edits)
    if after == before:
        return WriteReport((), ())
    _replace_checked(root, path, after, before, policy)
    return WriteReport((path.name,), (path.name,) if whole else ())


def _replace_checked(root: Path, path: Path, after: str, before: str | None, policy: RoutePolicy | None) -> None:
    """Write `after` to `path`, then put `before` back (or remove the file) unless the directory
    still loads."""
    replace_file(path, after)
    try:
        load_routes(root, policy)
    except BaseException:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            replace_file(path, before)
        raise


def _plain(value: Any) -> Any:
    return _number(value) if isinstance(value, float) else value


def route_file(root: Path, name: str) -> Path:
    """The file of route `name` in a routes directory (`.yaml`, or an existing `.yml`)."""
    for suffix in (".yaml", ".yml"):
        if (root / f"{name}{suffix}").exists():
            return root / f"{name}{suffix}"
    return root / f"{name}.yaml"


def _number(value: float) -> float:
    return round(float(value), 4)


def _edit(text: str | None, values: Mapping[str, Any]) -> tuple[str, bool]:
    """The new file text, and whether it had to be rewritten whole."""
    current = yaml.safe_load(text) if text else None
    data: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
    wanted = dict(data)
    for key, value in values.items():
        if value is None:
            wanted.pop(key, None)
        else:
            wanted[key] = value
    if wanted == data and text is not None:
        return text, False
    edited = text or ""
    for key, value in values.items():
        edited = _set_line(edited, key, value)
    try:
        ok = yaml.safe_load(edited) == wanted
    except yaml.YAMLError:
        ok = False
    if ok:
        return edited, False
    return yaml.safe_dump(wanted, sort_keys=False, allow_unicode=True, width=1000), True


def _set_line(text: str, key: str, value: Any) -> str:
    lines = text.splitlines(keepends=True)
    pattern = re.compile(rf"^{re.escape(key)}[ \t]*:(?P<value>[^#\n]*?)(?P<comment>[ \t]+#.*)?(?P<eol>\r?\n)?$")
    for i, line in enumerate(lines):
        found = pattern.match(line)
        if found:
            if value is None:
                del lines[i]
            else:
                comment = found.group("comment") or ""
                lines[i] = f"{key}: {_scalar(value)}{comment}{found.group('eol') or os.linesep}"
            return "".join(lines)
    if value is None:
        return text
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    anchor = _insert_after(lines, key)
    lines.insert(anchor, f"{key}: {_scalar(value)}\n")
    return "".join(lines)


def _insert_after(lines: list[str], key: str) -> int:
    """Where a new top-level key goes: after the last router key present, else after `name`."""
    for keys in ((ROUTER_KEYS if key in ROUTER_KEYS else ()), ("name",)):
        found = [i for i, line in enumerate(lines) if any(re.match(rf"^{re.escape(k)}[ \t]*:", line) for k in keys)]
        if found:
            return max(found) + 1
    return len(lines)


def _scalar(value: Any) -> str:
    text = str(yaml.safe_dump(value, default_flow_style=True))
    return text.strip().removesuffix("...").strip()


def replace_file(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (a temporary file beside it, then a rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
