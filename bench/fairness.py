"""Fairness: plain classify latency while other callers loop maximal batches (issues 10, 22).

    .venv/bin/python -m bench.fairness [--duration 120] [--batch-clients 2] [--conversations]
                                       [--service-root DIR] [--json PATH]
                                       [--baseline BEFORE.json] [--write]

Starts the real service (`python -m service`) on the shipped routes, indexed into a temporary
directory, loopback only. Phase 1: one client classifies plain queries alone. Phase 2: the same
client while `--batch-clients` clients loop maximal batches: 128 queries of 2,000 characters,
or with `--conversations` 128 conversations of 16 messages filling the 1 MB body limit (about
2,800 texts for the conversation rule to embed per batch), never seen before, so every text is
embedded. Every plain query is new too. Prints the plain classify p50 / p99 / max of both
phases and the batches' own latency; `--baseline` adds the figures of an earlier run (e.g. of
the code before a change, served from a checkout of it with `--service-root`) to the table;
`--write` records it in BENCHMARKS.md (section `fairness`, or `fairness-conversations`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.loadtest import QUERIES, _reindex, _wait_ready
from bench.sections import markers, write_section
from bench.stats import percentile
from devkit.processes import stop_process

ROOT = Path(__file__).resolve().parents[1]
BATCH = 128
QUERY_CHARS = 2000
MESSAGES = 16  # per conversation: 8 user messages and the assistant messages between (more than a window)
MESSAGE_CHARS = 440  # 128 conversations of 16 such messages: just under the 1 MB body limit


@dataclass
class Phase:
    """Plain classify latencies of one phase, and the batches that ran beside them."""

    name: str
    seconds: float
    plain: int = 0
    plain_p50_ms: float = 0.0
    plain_p99_ms: float = 0.0
    plain_max_ms: float = 0.0
    batches: int = 0
    batch_p50_s: float = 0.0
    batch_max_s: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass
class FairnessResult:
    """Both phases, and where they ran."""

    commit: str
    started_at: str
    batch_clients: int
    phases: list[Phase] = field(default_factory=list)
    batches_of: str = "queries"
    workers: int = 1  # service worker processes (ROUTER_HTTP__WORKERS)


class Texts:
    """Texts never sent before: random words from the shipped examples, numbered."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        words: list[str] = []
        for path in sorted((ROOT / "routes").glob("*.yaml")):
            words += [w.strip("\"'-:,.?") for w in path.read_text().split() if w.isalpha()]
        self._words = words or ["router"]
        self._n = 0

    def long(self, chars: int = QUERY_CHARS) -> str:
        self._n += 1
        out = [f"request {self._n}:"]
        while sum(len(w) + 1 for w in out) < chars:
            out.append(self._rng.choice(self._words))
        return " ".join(out)[:chars]

    def conversation(self) -> list[dict[str, str]]:
        """`MESSAGES` messages, user and assistant in turn, of `MESSAGE_CHARS` characters."""
        return [
            {"role": "user" if i % 2 == 0 else "assistant", "content": self.long(MESSAGE_CHARS)}
            for i in range(MESSAGES)
        ]

    def plain(self) -> str:
        self._n += 1
        return f"{QUERIES[self._n % len(QUERIES)]} (ticket {self._n})"


def _summary(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return 0.0, 0.0, 0.0
    return percentile(values, 50), percentile(values, 99), max(values)


async def _plain_loop(http: httpx.AsyncClient, texts: Texts, stop_at: float, phase: Phase, out: list[float]) -> None:
    while time.monotonic() < stop_at:
        t0 = time.perf_counter()
        try:
            r = await http.post("/v1/classify", json={"query": texts.plain()})
        except httpx.HTTPError as exc:
            phase.errors.append(f"plain: {type(exc).__name__}: {exc}")
            continue
        if r.status_code != 200:
            phase.errors.append(f"plain: {r.status_code} {r.text[:200]}")
            continue
        out.append(time.perf_counter() - t0)


def batch_body(texts: Texts, conversations: bool) -> dict[str, Any]:
    """A maximal batch of new texts: queries, or conversations."""
    if conversations:
        return {"conversations": [{"messages": texts.conversation()} for _ in range(BATCH)]}
    return {"queries": [texts.long() for _ in range(BATCH)]}


async def _batch_loop(
    http: httpx.AsyncClient, texts: Texts, stop_at: float, phase: Phase, out: list[float], conversations: bool
) -> None:
    while time.monotonic() < stop_at:
        body = batch_body(texts, conversations)
        t0 = time.perf_counter()
        try:
            r = await http.post("/v1/classify/batch", json=body)
        except httpx.HTTPError as exc:
            phase.errors.append(f"batch: {type(exc).__name__}: {exc}")
            continue
        if r.status_code != 200:
            phase.errors.append(f"batch: {r.status_code} {r.text[:200]}")
            continue
        out.append(time.perf_counter() - t0)


async def _phase(
    http: httpx.AsyncClient, name: str, seconds: float, batch_clients: int, seed: int, conversations: bool = False
) -> Phase:
    phase = Phase(name, seconds)
    plain: list[float] = []
    batches: list[float] = []
    stop_at = time.monotonic() + seconds
    loops = [_batch_loop(http, Texts(seed + i), stop_at, phase, batches, conversations) for i in range(batch_clients)]
    if loops:
        await asyncio.sleep(1.0)  # let the batches start first: the plain client arrives behind them
    await asyncio.gather(_plain_loop(http, Texts(seed + 100), stop_at, phase, plain), *loops)
    phase.plain = len(plain)
    p50, p99, top = _summary(plain)
    phase.plain_p50_ms, phase.plain_p99_ms, phase.plain_max_ms = (round(v * 1e3, 1) for v in (p50, p99, top))
    phase.batches = len(batches)
    b50, _, bmax = _summary(batches)
    phase.batch_p50_s, phase.batch_max_s = round(b50, 2), round(bmax, 2)
    phase.errors = phase.errors[:5]
    return phase


async def run(
    seconds: float,
    batch_clients: int,
    workdir: Path,
    *,
    conversations: bool = False,
    service_root: Path = ROOT,
    workers: int | None = None,
) -> FairnessResult:
    routes = workdir / "routes"
    shutil.copytree(ROOT / "routes", routes)
    port = 19000 + os.getpid() % 1000
    env = {
        **os.environ,
        "ROUTER_ROUTES_DIR": str(routes),
        "ROUTER_INDEX__DATA_DIR": str(workdir / "data"),
        "ROUTER_HTTP__PORT": str(port),
        "ROUTER_LOG__LEVEL": "WARNING",
    }
    await asyncio.to_thread(_reindex, env)
    if workers is not None:  # unset: one process for code older than the setting, else its default
        env["ROUTER_HTTP__WORKERS"] = str(workers)
    kind = "conversations" if conversations else "queries"
    result = FairnessResult(
        _commit(service_root),
        time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        batch_clients,
        batches_of=kind,
        workers=workers or 1,
    )
    service = subprocess.Popen(  # the service code measured: this checkout, or --service-root
        [sys.executable, "-m", "service"], cwd=service_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=600, limits=httpx.Limits(max_connections=batch_clients + 4)
        ) as http:
            await _wait_ready(http, service)
            result.phases.append(await _phase(http, "plain classify alone", seconds / 4, 0, 1))
            name = (
                f"plain classify while {batch_clients} clients loop {'conversation ' if conversations else ''}batches"
            )
            result.phases.append(await _phase(http, name, seconds, batch_clients, 2, conversations))
    finally:
        stop_process(service)
    return result


def _commit(root: Path = ROOT) -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=False
    )
    return (proc.stdout.strip() or "unknown") + ("+changes" if dirty.stdout.strip() else "")


def render(runs: list[tuple[str, dict[str, Any]]], command: str) -> str:
    """The BENCHMARKS.md section: one row per run and phase."""
    if runs[-1][1].get("batches_of") == "conversations":
        return render_conversations(runs, command)
    start, end = markers("fairness")
    lines = [
        start,
        "## Fairness: plain classify while others send maximal batches",
        "",
        f"Command: `{command}`. The real service on the shipped routes (loopback); each batch is "
        f"{BATCH} queries of {QUERY_CHARS:,} characters never sent before, each plain query is new too "
        "(every text is embedded).",
        "",
    ]
    lines += _rows(runs)
    lines += [
        "",
        "Before: one batch request was one forward pass, queued first come first served, so a plain "
        "query waited for every batch ahead of it. After: a pass holds at most "
        "`ROUTER_LIMITS__MAX_MICRO_BATCH_CHARS` (16,000) characters; batches are split across passes, "
        "the oldest request gets one item per pass and the rest goes to the requests with the least "
        "work left, so a plain query rides in the next pass.",
        end,
    ]
    return "\n".join(lines)


def _rows(runs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    lines = [
        "| code | phase | plain queries | plain p50 | plain p99 | plain max | batches done | batch p50 | batch max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, data in runs:
        for p in data["phases"]:
            lines.append(
                f"| {label} (`{data['commit']}`, {data.get('workers', 1)} process(es)) "
                f"| {p['name']} ({p['seconds']:.0f} s) | {p['plain']} "
                f"| {p['plain_p50_ms']} ms | {p['plain_p99_ms']} ms | {p['plain_max_ms']} ms | {p['batches']} "
                f"| {p['batch_p50_s']} s | {p['batch_max_s']} s |"
            )
    return lines


def render_conversations(runs: list[tuple[str, dict[str, Any]]], command: str) -> str:
    """The BENCHMARKS.md section of conversation batches (issue 22)."""
    start, end = markers("fairness-conversations")
    return "\n".join(
        [
            start,
            "## Fairness: plain classify while others send maximal conversation batches",
            "",
            f"Command: `{command}`. As above, but each batch is {BATCH} conversations of {MESSAGES} messages "
            f"(user and assistant in turn) of {MESSAGE_CHARS} characters never sent before, just under the 1 MB "
            "body limit: the 11 messages of each window (6 user messages, 5 answers by their last 200 characters) "
            "for the conversation rule to embed, about 1,400 texts per batch.",
            "",
            *_rows(runs),
            "",
            "Before: a conversation was one item of the micro-batch planner, priced by the characters of its "
            "messages, while the vote embeds its window messages and their context texts, about twice as "
            "much; the rate limit charged it one query. After (`service.routing.costs`): each text a "
            "conversation makes the router embed is a unit of its own, embedded ahead of the conversation, so "
            "a pass holds at most 16,000 characters of new text whatever the request; the rate limit charges "
            "one query per new text, and a client that hangs up has its remaining passes dropped.",
            end,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of the loaded phase")
    parser.add_argument("--batch-clients", type=int, default=2)
    parser.add_argument("--conversations", action="store_true", help="loop batches of conversations")
    parser.add_argument(
        "--service-root", type=Path, default=ROOT, help="checkout whose `python -m service` is measured (default: this)"
    )
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    parser.add_argument("--workers", type=int, default=None, help="ROUTER_HTTP__WORKERS (default: unset)")
    parser.add_argument("--baseline", type=Path, help="JSON of an earlier run, shown first as 'before'")
    parser.add_argument("--write", action="store_true", help="record the figures in BENCHMARKS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="router-fairness-") as tmp:
        result = asyncio.run(
            run(
                args.duration,
                args.batch_clients,
                Path(tmp),
                conversations=args.conversations,
                service_root=args.service_root.resolve(),
                workers=args.workers,
            )
        )
    data = asdict(result)
    print(json.dumps(data, indent=2))
    if args.json:
        args.json.write_text(json.dumps(data, indent=2))
    runs = [("before", json.loads(args.baseline.read_text()))] if args.baseline else []
    runs.append(("after" if args.baseline else "this code", data))
    if args.write:
        command = (
            f".venv/bin/python -m bench.fairness --duration {args.duration:.0f} --batch-clients {args.batch_clients}"
        )
        if args.conversations:
            command += " --conversations"
        if args.workers is not None:
            command += f" --workers {args.workers}"
        if args.baseline:
            command += " --baseline <run of the code before> --write"
        section = "fairness-conversations" if args.conversations else "fairness"
        write_section(ROOT / "BENCHMARKS.md", section, render(runs, command))
    errors = [e for p in result.phases for e in p.errors]
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
