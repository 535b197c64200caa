"""What each role of a chat contributes to routing, measured on SGD and MultiWOZ.

    .venv/bin/python -m bench.chat_roles [--datasets ../shared/datasets] [--write] [--json PATH]

For each multi-turn set: routes imported from `routes_train.jsonl` (as `bench.conversation_sets`:
threshold 0.45, k 5, base MiniLM), the conversation rule with the index's settings (the shipped
defaults), the 400 dev conversations rewritten as an agent framework sends them. Every labelled
turn is read by the service's own function (`service.agents.build_conversation`, under a
`RolePolicy`) and routed by the routing pipeline (`router_core.Router`), as the service routes a
chat; scored by kind of turn (`router_core.labelled_conversations`). Rewrites:

- tools echo: before each assistant reply, an assistant message with content null calling
  `lookup` (arguments: the user's message) and the tool's result: the reply, as JSON;
- tools only: the same, but the assistant's reply becomes "Here is what I found." (the topic
  is named in the tool result alone);
- tools noise: the tool result says nothing of the topic (`{"status": "ok", ...}`);
- system, generic: "You are a helpful assistant..." first;
- system naming the routes: a system prompt listing every route of the set first (a
  multi-purpose assistant's prompt);
- system naming one route: "You are the <first route> assistant..." first (a prompt that
  names a topic every chat of the client shares).

Policies: the service's default (neither tool results nor system prompts read), tools read
(as assistant messages, the first 500 characters of the last 2 of an exchange), system read
(as an assistant message).

Cost: the same conversations with three 30,000-character tool results in every exchange, the
texts and characters the pipeline plans for each labelled turn (`pipeline.plan`, history
cold): not read (the default), read cut and bounded, read whole.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.conversation_sets import SETS, TYPES
from bench.report import write_named_section
from indexer.conversations import load_conversations
from indexer.importer import write_routes_from_jsonl
from router_core import Router, RouteRequest, load_embedder, load_routes, pipeline, run_reindex
from router_core.labelled_conversations import LabelledConversation, LabelledTurn, score_turns
from router_core.pipeline import vote_only
from router_core.store import EdgeStore
from service.agents.conversation import DEFAULT_POLICY, RolePolicy, build_conversation
from service.settings import LimitSettings

REPO = Path(__file__).resolve().parents[1]
Message = dict[str, Any]
Rewrite = Callable[[LabelledConversation, Sequence[str]], tuple[list[Message], dict[int, int]]]
LIMITS = LimitSettings(max_messages=10_000, max_conversation_chars=10**8)  # the limits are not measured here
FOUND = "Here is what I found."
GENERIC_SYSTEM = "You are a helpful assistant. Answer briefly and politely, and ask when something is unclear."
HUGE = 30_000
COLUMNS = ("all", "first", "follow-up", "switch")
TOOLS_READ = RolePolicy(tool_results=True)
UNBOUNDED = RolePolicy(tool_results=True, tool_result_chars=10**9, tool_results_per_exchange=10**9)
POLICIES = {"default (tools not read)": DEFAULT_POLICY, "tools read": TOOLS_READ}
SYSTEM_READ = {"default (system not read)": DEFAULT_POLICY, "system read": RolePolicy(system_prompts=True)}


def _with_tools(result: Callable[[int, str, str], list[str]], reply: Callable[[str], str]) -> Rewrite:
    """Before each assistant reply: a tool call (content null) and its results."""

    def rewrite(c: LabelledConversation, _routes: Sequence[str]) -> tuple[list[Message], dict[int, int]]:
        out: list[Message] = []
        where: dict[int, int] = {}
        last_user = ""
        for t in c.messages:
            if t.role == "assistant":
                n = len(out)
                call = {"id": f"call_{n}", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
                call["function"]["arguments"] = json.dumps({"query": last_user})
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
                results = result(n, last_user, t.text)
                out += [{"role": "tool", "tool_call_id": f"call_{n}", "content": r} for r in results]
                out.append({"role": "assistant", "content": reply(t.text)})
            else:
                last_user = t.text if t.role == "user" else last_user
                where[t.index] = len(out)
                out.append({"role": t.role, "content": t.text})
        return out, where

    return rewrite


def _with_system(prompt: Callable[[Sequence[str]], str]) -> Rewrite:
    def rewrite(c: LabelledConversation, routes: Sequence[str]) -> tuple[list[Message], dict[int, int]]:
        out: list[Message] = [{"role": "system", "content": prompt(routes)}]
        out += [{"role": t.role, "content": t.text} for t in c.messages]
        return out, {t.index: t.index + 1 for t in c.messages}

    return rewrite


def _plain(c: LabelledConversation, _routes: Sequence[str]) -> tuple[list[Message], dict[int, int]]:
    return [{"role": t.role, "content": t.text} for t in c.messages], {t.index: t.index for t in c.messages}


REWRITES: dict[str, Rewrite] = {
    "plain": _plain,
    "tools echo": _with_tools(lambda _n, _q, reply: [json.dumps({"result": reply})], lambda reply: reply),
    "tools only": _with_tools(lambda _n, _q, reply: [json.dumps({"result": reply})], lambda _r: FOUND),
    "tools noise": _with_tools(
        lambda n, _q, _r: [json.dumps({"status": "ok", "request_id": 1000 + n, "took_ms": 12})], lambda reply: reply
    ),
    "system, generic": _with_system(lambda _routes: GENERIC_SYSTEM),
    "system naming the routes": _with_system(
        lambda routes: (
            "You are the assistant of a travel and lifestyle service. You can help with "
            + ", ".join(routes)
            + ". Be concise."
        )
    ),
    "system naming one route": _with_system(
        lambda routes: f"You are the {routes[0]} assistant of a travel and lifestyle service. Be concise."
    ),
}
HUGE_TOOLS = _with_tools(
    lambda n, _q, reply: [json.dumps({"rows": [reply] * (HUGE // max(1, len(reply)))})[:HUGE]] * 3, lambda r: r
)


def requests_of(
    conversations: Sequence[LabelledConversation], rewrite: Rewrite, routes: Sequence[str], policy: RolePolicy
) -> tuple[list[RouteRequest], list[LabelledTurn]]:
    """Each labelled turn of the rewritten chats, as the service reads it under `policy`."""
    requests, labels = [], []
    for c in conversations:
        messages, where = rewrite(c, routes)
        for label in c.labels:
            chat = build_conversation(messages[: where[label.position] + 1], LIMITS, policy)
            requests.append(RouteRequest(chat.turns))
            labels.append(label)
    return requests, labels


def measure_set(datasets: Path, folder: str, tmp: Path) -> dict[str, Any]:
    """Accuracy by kind of turn per rewrite and policy, and the planned cost of huge tool results."""
    routes, data = tmp / f"{folder}-routes", tmp / f"{folder}-data"
    write_routes_from_jsonl(datasets / folder / "routes_train.jsonl", routes)
    embedder = load_embedder()
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    store = EdgeStore(data)
    live = store.live_version()
    assert live is not None
    index = store.open_version(live)
    try:
        router = Router(index, embedder)
        table = vote_only(index.table)
        names = [r.name for r in table.routes]
        conversations = load_conversations(datasets / folder / "dev_conversations.jsonl")
        cases: list[tuple[str, str, list[RouteRequest], list[LabelledTurn]]] = []
        for variant, rewrite in REWRITES.items():
            policies = SYSTEM_READ if variant.startswith("system") else POLICIES
            for policy_name, policy in policies.items():
                if variant == "plain" and policy is not DEFAULT_POLICY:
                    continue
                cases.append((variant, policy_name, *requests_of(conversations, rewrite, names, policy)))
        every = [r for case in cases for r in case[2]]
        decisions = router.routing(every, table=table).decisions  # each distinct text embedded once
        rows: dict[str, dict[str, Any]] = {}
        start = 0
        for variant, policy_name, requests, labels in cases:
            decided = decisions[start : start + len(requests)]
            start += len(requests)
            s = score_turns([d.route for d in decided], labels, table.params.default_route)
            rows[f"{variant}, {policy_name}"] = {**s.as_row(), "counts": s.counts}
        return {"rows": rows, "cost": _cost(conversations, names, table)}
    finally:
        index.close()
        store.close()


def _cost(conversations: Sequence[LabelledConversation], names: Sequence[str], table: Any) -> dict[str, Any]:
    """Texts and characters the pipeline plans per labelled turn, history cold."""
    out: dict[str, Any] = {}
    for name, rewrite, policy in (
        ("plain", _plain, DEFAULT_POLICY),
        ("huge tool results, default (not read)", HUGE_TOOLS, DEFAULT_POLICY),
        ("huge tool results read, first 500 characters of the last 2 per exchange", HUGE_TOOLS, TOOLS_READ),
        ("huge tool results read whole", HUGE_TOOLS, UNBOUNDED),
    ):
        requests, _ = requests_of(conversations, rewrite, names, policy)
        planned = pipeline.plan(requests, table)
        texts = [len(p) for p in planned.per_request]
        chars = [sum(len(t) for t in p) for p in planned.per_request]
        out[name] = {
            "texts_mean": round(statistics.mean(texts), 1),
            "texts_max": max(texts),
            "chars_mean": round(statistics.mean(chars)),
            "chars_max": max(chars),
        }
    return out


def render(out: dict[str, Any]) -> str:
    """The BENCHMARKS.md section."""
    names = list(out["sets"])

    def pct(v: float) -> str:
        return f"{v * 100:.1f}%"

    lines = [
        "## What each role contributes to routing (tools, system prompts)",
        "",
        "Command: `.venv/bin/python -m bench.chat_roles --write`. Each set's routes imported from its "
        "`routes_train.jsonl`; its 400 dev conversations rewritten as an agent framework sends them; every "
        "labelled turn read by the service's `build_conversation` under a role policy and routed by the routing "
        "pipeline (the rule's shipped defaults). Tools echo: a tool call (content null) and a tool result holding "
        'the assistant\'s reply before each reply; tools only: the reply becomes "Here is what I found." (the '
        "topic is in the tool result alone); tools noise: the result is a status object. System: a generic prompt, "
        "or one listing every route, or one naming the first route, first. Default policy (the service's): "
        "neither tool results nor system and developer prompts are read; tools read: tool results read as "
        "assistant messages (first 500 characters, the last 2 of an exchange); system read: the system prompt "
        "read as an assistant message.",
        "",
        "| rewrite, role policy | " + " | ".join(f"{n} {t}" for n in names for t in COLUMNS) + " |",
        "|---|" + "---|" * (4 * len(names)),
    ]
    for label in out["sets"][names[0]]["rows"]:
        cells = [pct(out["sets"][n]["rows"][label][t]) for n in names for t in TYPES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Reading them changes the accuracy on all turns by (points, read minus not read):", ""]
    for n in names:
        rows = out["sets"][n]["rows"]
        deltas = []
        for variant, read, default in (
            *((v, "tools read", "default (tools not read)") for v in ("tools echo", "tools only", "tools noise")),
            *((v, "system read", "default (system not read)") for v in REWRITES if v.startswith("system")),
        ):
            change = 100 * (rows[f"{variant}, {read}"]["all"] - rows[f"{variant}, {default}"]["all"])
            deltas.append(f"{variant} {change:+.1f}")
        lines.append(f"- {n}: " + ", ".join(deltas))
    lines += [
        "",
        f"Cost: three {HUGE:,}-character tool results in every exchange; what the pipeline plans to embed per "
        "labelled turn with the history not yet seen (mean / max texts, mean / max characters):",
        "",
        "| | " + " | ".join(f"{n} texts | {n} characters" for n in names) + " |",
        "|---|" + "---|" * (2 * len(names)),
    ]
    for label in out["sets"][names[0]]["cost"]:
        cells = []
        for n in names:
            c = out["sets"][n]["cost"][label]
            cells += [f"{c['texts_mean']} / {c['texts_max']}", f"{c['chars_mean']:,} / {c['chars_max']:,}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chat_roles", description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--write", action="store_true", help="rewrite the section of BENCHMARKS.md")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = {"sets": {name: measure_set(args.datasets, folder, Path(tmp)) for name, folder in SETS.items()}}
    section = render(out)
    print(section)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    if args.write:
        write_named_section(REPO / "BENCHMARKS.md", "chat-roles", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
