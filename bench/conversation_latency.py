"""What a conversation costs over HTTP next to one message: never seen before (cold) and with
its history seen (a live chat's next turn), interleaved in one run.

The service is `python -m service` in its own process, serving the SGD multi-turn set's routes
(routes_train.jsonl); the conversations are its dev dialogues cut at their 10th user message
(10 user messages and the assistant messages between them). Per conversation, in an order that
rotates: one message (its 10th user message alone, a text never sent before), the conversation
cold (every message tagged so that the service has embedded none of them), and warm (the same
tagged conversation without its last user message first, unmeasured, then the whole: the next
turn of a live chat). p50 over the conversations, and the ratios against one message. The tag
is a number of its own per request (" 417"), one or two tokens a message: a chat never seen, as a
client sends it; until stop 34 it was "[cold 17 12345]", six tokens a message, which made
every text half as long again as SGD's messages (about 12 tokens) and the cold request dearer.
`--window N` (repeatable) measures the same again with the conversation window set to N in
`_router.yaml`, each in a service of its own (the work of a chat never seen is its window).

`--baseline-root DIR` measures a checkout of the code before first, in the same command.

`--workers N --fresh-connections`: the service with N worker processes and a new connection per
request, so that a live chat's next turn lands on another worker than its previous one.

`--learnt`: the routes calibrated first as a user does (`python -m indexer calibrate
dev_conversations.jsonl --off-topic clinc150/train.jsonl --off-topic clinc150/val.jsonl
--write`, then re-indexed): the service then also reads the follow-ups and replies it learnt.

    python -m bench.conversation_latency [--datasets ../shared/datasets] [--conversations 40]
        [--window 4] [--baseline-root DIR] [--baseline-label LABEL] [--workers N]
        [--fresh-connections] [--write]
"""

from __future__ import annotations

import argparse
import http.client
import io
import itertools
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.report import write_named_section
from bench.stats import percentile, ratio
from devkit.service_process import index_with_checkout, service_process
from devkit.serving import ROOT
from indexer.cli import main as indexer_main
from indexer.conversations import LabelledConversation, load_conversations
from indexer.importer import write_routes_from_jsonl
from router_core import Embedder, load_embedder, load_routes, run_reindex
from router_core.routes_writer import write_conversation_params
from router_core.store import EdgeStore

TURNS = 10


class Client:
    """POST /v1/classify over one keep-alive connection (`fresh`: a new connection per request,
    as a chat backend whose turns come from different connections; the time includes it)."""

    def __init__(self, url: str, *, fresh: bool = False) -> None:
        parts = urlsplit(url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._fresh = fresh
        self._conn = http.client.HTTPConnection(*self._address, timeout=120)

    def seconds(self, body: dict[str, Any]) -> float:
        """Time of one classify (RuntimeError unless 200)."""
        started = time.perf_counter()
        if self._fresh:
            self._conn.close()
            self._conn = http.client.HTTPConnection(*self._address, timeout=120)
        self._conn.request("POST", "/v1/classify", json.dumps(body), {"content-type": "application/json"})
        response = self._conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"classify answered {response.status}: {payload[:300]!r}")
        return time.perf_counter() - started


def cut(conversation: LabelledConversation, tag: int) -> list[dict[str, str]]:
    """The conversation up to its TURNS-th user message, every message tagged with the
    request's own number (never seen)."""
    users = [i for i, t in enumerate(conversation.messages) if t.role == "user"]
    end = users[TURNS - 1]
    return [
        {"role": t.role, "content": f"{t.text} {tag}"}
        for t in conversation.messages[: end + 1]
        if t.role in ("user", "assistant")
    ]


def measure(url: str, conversations: Sequence[LabelledConversation], *, fresh: bool = False) -> dict[str, Any]:
    """Interleaved timings of one message, a cold conversation and a warm one."""
    client = Client(url, fresh=fresh)
    tags = itertools.count()  # one per request: the service (a process of its own) has seen none
    for c in conversations[:5]:  # warm-up: the first calls of a process are slower
        client.seconds({"messages": cut(c, next(tags))})
    times: dict[str, list[float]] = {"one message": [], "cold": [], "warm": []}
    for i, c in enumerate(conversations):
        order = ["one message", "cold", "warm"]
        order = order[i % 3 :] + order[: i % 3]
        for kind in order:
            messages = cut(c, next(tags))
            if kind == "one message":
                times[kind].append(client.seconds({"query": messages[-1]["content"]}))
            elif kind == "cold":
                times[kind].append(client.seconds({"messages": messages}))
            else:
                last_user = max(j for j, m in enumerate(messages) if m["role"] == "user")
                client.seconds({"messages": messages[:last_user]})  # the chat so far, unmeasured
                times[kind].append(client.seconds({"messages": messages}))
    p50 = {kind: percentile(values, 50) * 1e3 for kind, values in times.items()}
    return {
        "conversations": len(conversations),
        "p50_ms": {k: round(v, 2) for k, v in p50.items()},
        "p99_ms": {k: round(percentile(v, 99) * 1e3, 2) for k, v in times.items()},
        "cold_vs_one": ratio(p50["cold"], p50["one message"]),
        "warm_vs_one": ratio(p50["warm"], p50["one message"]),
    }


def learn(datasets: Path, routes: Path, data: Path, embedder: Embedder) -> None:
    """Calibrate the routes on the SGD dev conversations and re-index, as README's
    Conversations section tells a user to: the follow-ups and replies learnt are then served."""
    clinc = datasets / "clinc150"
    args = ["calibrate", str(datasets / "sgd_multiturn" / "dev_conversations.jsonl"), "--write"]
    args += ["--off-topic", str(clinc / "train.jsonl"), "--off-topic", str(clinc / "val.jsonl")]
    out = io.StringIO()
    if indexer_main([*args, "--routes", str(routes), "--data-dir", str(data)], out=out, embedder=embedder) != 0:
        raise RuntimeError(f"calibrate failed: {out.getvalue()[-500:]}")
    run_reindex(load_routes(routes), EdgeStore(data), embedder)


def run(
    datasets: Path,
    count: int,
    windows: Sequence[int] = (),
    baseline: Path | None = None,
    *,
    workers: int = 1,
    fresh: bool = False,
    learnt: bool = False,
) -> dict[str, Any]:
    """Index the SGD routes, serve them in a process of their own, measure; then the same with
    each of `windows` as the conversation window. `baseline`: a checkout of the code before,
    measured first at the default window, in the same command. `learnt`: this checkout's
    routes calibrated on the dev conversations first (`learn`)."""
    sgd = datasets / "sgd_multiturn"
    conversations = [
        c
        for c in load_conversations(sgd / "dev_conversations.jsonl")
        if sum(t.role == "user" for t in c.messages) >= TURNS
    ][:count]
    embedder = load_embedder()
    result: dict[str, Any] = {}
    runs: list[tuple[int | None, Path]] = [(None, baseline)] if baseline is not None else []
    runs += [(None, ROOT), *((w, ROOT) for w in windows)]
    for window, root in runs:
        with tempfile.TemporaryDirectory() as tmp:
            routes, data = Path(tmp) / "routes", Path(tmp) / "data"
            write_routes_from_jsonl(sgd / "routes_train.jsonl", routes)
            if window is not None:
                write_conversation_params(routes, replace(load_routes(routes).conversation, window=window))
            table = load_routes(routes)
            env = {"ROUTER_ROUTES_DIR": str(routes), "ROUTER_INDEX__DATA_DIR": str(data)}
            if root == ROOT:
                run_reindex(table, EdgeStore(data), embedder)
                if learnt:
                    learn(datasets, routes, data, embedder)
                    table = load_routes(routes)
            else:  # the index its own indexer builds: a newer one may record what it does not know
                index_with_checkout(root, env)
            with service_process(env, root=root, workers=workers) as service:
                measured = measure(service.url, conversations, fresh=fresh)
        measured["window"] = table.conversation.window
        if root != ROOT:
            result["baseline"] = measured
        elif window is None:
            result.update(measured)
        else:
            result.setdefault("windows", []).append(measured)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    result["workers"], result["fresh_connections"], result["learnt"] = workers, fresh, learnt
    return result


def title_of(result: dict[str, Any]) -> str:
    """The section title's end: how the service ran, unless as one process on one connection."""
    workers = result.get("workers", 1)
    parts = [f"{workers} worker processes"] if workers > 1 else []
    if result.get("fresh_connections"):
        parts.append("a connection per request")
    if result.get("learnt"):
        parts.append("the follow-ups and replies learnt")
    return f", {' and '.join(parts)}" if parts else ""


def served(result: dict[str, Any]) -> str:
    """How the service ran and how the client connected."""
    workers = result.get("workers", 1)
    how = f"{workers} worker processes" if workers > 1 else "one process"
    learnt = "; the routes calibrated on the dev conversations first, follow-ups and replies learnt" * bool(
        result.get("learnt")
    )
    if result.get("fresh_connections"):
        return f"{how}, a new connection per request (each timed with it){learnt}"
    return f"{how}, one kept-alive connection{learnt}"


def render(result: dict[str, Any], command: str) -> str:
    """The BENCHMARKS.md section."""

    def rows(measured: dict[str, Any], label: str) -> list[str]:
        p50, p99 = measured["p50_ms"], measured["p99_ms"]
        return [
            f"| {kind}{label} | {p50[kind]} ms | {p99[kind]} ms | {ratio(p50[kind], p50['one message'])}x |"
            for kind in ("one message", "cold", "warm")
        ]

    lines = []
    if "baseline" in result:
        lines += rows(result["baseline"], f" (window {result['baseline']['window']}, {result['baseline_label']})")
    here = ", this checkout" if "baseline" in result else ""
    lines += rows(result, f" (window {result['window']}, the default{here})")
    for other in result.get("windows", []):
        lines += rows(other, f" (window {other['window']})")
    return (
        f"## Conversation latency: never seen (cold) and with its history seen (warm){title_of(result)}\n\n"
        f"Command: `{command}`. {result['conversations']} SGD dev conversations cut at their {TURNS}th user "
        f"message, over HTTP to `python -m service` in its own process (one per window and checkout, in "
        f"turn; {served(result)}), the three kinds of request interleaved; load "
        f"average at the end {result['load_average']}.\n\n"
        "| request | p50 | p99 | p50 x one message |\n|---|---|---|---|\n" + "\n".join(lines) + "\n\n"
        "Targets (issue 21): cold <= 3x one message, warm <= 1.5x.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print, and with --write put the section into BENCHMARKS.md."""
    parser = argparse.ArgumentParser(prog="python -m bench.conversation_latency", description=__doc__)
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument("--window", type=int, action="append", default=[], help="also measure this window")
    parser.add_argument("--baseline-root", type=Path, default=None, help="checkout of the code before, measured first")
    parser.add_argument("--baseline-label", default="the code before", help="what the baseline is, for the table")
    parser.add_argument("--workers", type=int, default=1, help="ROUTER_HTTP__WORKERS of the service")
    parser.add_argument(
        "--fresh-connections", action="store_true", help="a new connection per request (the workers take them in turn)"
    )
    parser.add_argument(
        "--learnt",
        action="store_true",
        help="serve the routes calibrated on the dev conversations (follow-ups, replies)",
    )
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.learnt and args.baseline_root is not None:
        parser.error("--learnt calibrates with this checkout's indexer: measure a baseline without it")
    result = run(
        args.datasets,
        args.conversations,
        args.window,
        args.baseline_root,
        workers=args.workers,
        fresh=args.fresh_connections,
        learnt=args.learnt,
    )
    if args.baseline_root is not None:
        result["baseline_label"] = args.baseline_label
    print(json.dumps(result, indent=1))
    if args.write:
        extra = "".join(f" --window {w}" for w in args.window)
        if args.baseline_root is not None:
            extra += f" --baseline-root DIR --baseline-label '{args.baseline_label}'"
        if args.workers != 1:
            extra += f" --workers {args.workers}"
        if args.fresh_connections:
            extra += " --fresh-connections"
        if args.learnt:
            extra += " --learnt"
        command = f"python -m bench.conversation_latency --conversations {args.conversations}{extra} --write"
        name = "conversation-latency-workers" if args.workers > 1 or args.fresh_connections else "conversation-latency"
        name += "-learnt" * args.learnt
        write_named_section(Path("BENCHMARKS.md"), name, render(result, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
