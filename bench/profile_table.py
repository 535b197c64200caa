"""Where a request's time goes on the event loop, from a py-spy profile of the service (`py-spy
record --format raw --threads`), by part of the request. (The forward-pass thread's split between
embedding and search is the service's own `router_classify_stage_seconds`; py-spy does not see
inside ONNX Runtime reliably.)

Each sample is put in the first part (listed in order) one of its frames belongs to, from the
innermost frame out, so the parts add up to the thread's busy samples. With `--loop-cpu-ms X`
(the event loop thread's CPU time per request, measured from /proc over the same window: sample
counts are too few, and py-spy's idle detection too rough, to time the thread themselves) each
part is also given in ms per request, its share of X.

    python -m bench.profile_table PROFILE.txt [--loop-cpu-ms X] [--label NAME]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

EVENT_LOOP = "MainThread"
# (part, frame patterns), innermost match wins; the order breaks ties within a frame.
LOOP_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("access log (logging, JSON line)", ("Logger.", "JsonFormatter", "StreamHandler")),
    ("guards (origin, keys, rate limit)", ("authorize_connection",)),
    ("dependency injection", ("resolve_dependencies", "resolve_dependency", "KwargsModel.to_kwargs")),
    ("body read and validation (msgspec)", ("json_extractor", "SignatureModel", "Request.body", "extractor")),
    ("decision log record", ("record_decisions", "RequestRecorder", "DecisionLog.")),
    ("hand-off to the micro-batcher and back", ("MicroBatcher.", "RoutingStage.route", "RoutingStage.cost")),
    ("classify handler (the rest)", ("ClassifyController.",)),
    ("response building and sending", ("to_response", "ASGIResponse", "send_with_id", "RequestResponseCycle.send")),
    ("request context (id, metrics, client watch)", ("RequestContext.", "ClientWatch", "ProxyHeadersMiddleware")),
    ("routing and other framework layers", ("Litestar.__call__", "ASGIRouter", "HTTPRoute.", "ExceptionHandler")),
    ("HTTP parsing (httptools, head limits)", ("HttpToolsProtocol", "BoundedHeadProtocol", "httptools_impl")),
)
# Samples whose innermost frame is this wait (py-spy --idle records them too).
IDLE = {EVENT_LOOP: ("Runner.run ",)}
IDLE_PART = "idle: waiting (the loop: for I/O, or in uvloop's C code)"


def _frames(stack: str) -> list[str]:
    return stack.split(";")[1:]


def parts_of(path: Path, thread: str, parts: tuple[tuple[str, tuple[str, ...]], ...]) -> Counter[str]:
    """Samples of threads whose name holds `thread`, by part ("idle or other" when none)."""
    out: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or thread not in stack.split(";")[0]:
            continue
        frames = [f + " " for f in _frames(stack)]
        if frames and any(frames[-1].startswith(m) for m in IDLE[thread]):
            out[IDLE_PART] += int(count)
            continue
        part = next(
            (name for frame in reversed(frames) for name, marks in parts if any(m in frame for m in marks)),
            "event loop itself and other",
        )
        out[part] += int(count)
    return out


def table(path: Path, *, loop_cpu_ms: float | None, label: str) -> str:
    """Markdown rows: part, share of the thread's busy samples (idle ones apart), ms per
    request when known."""
    rows = [f"| {label} | part | share of the thread's busy samples | ms per request |", "|---|---|---|---|"]
    for thread, name, parts in ((EVENT_LOOP, "event loop", LOOP_PARTS),):
        counts = parts_of(path, thread, parts)
        idle = counts.pop(IDLE_PART, 0)
        busy = sum(counts.values()) or 1
        for part, n in counts.most_common():
            per = f"{n / busy * loop_cpu_ms:.2f}" if loop_cpu_ms else "-"
            rows.append(f"| {name} | {part} | {n / busy:.0%} | {per} |")
        per_busy = f"{loop_cpu_ms:.2f}" if loop_cpu_ms else "-"
        rows.append(f"| {name} | **busy, all parts** | 100% | **{per_busy}** |")
        if idle:
            rows.append(f"| {name} | (idle samples, not counted above) | {idle / busy:.0%} of busy | - |")
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile_table", description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--loop-cpu-ms", type=float, default=None, help="the event loop's CPU ms per request")
    parser.add_argument("--label", default="thread")
    args = parser.parse_args(argv)
    print(table(args.profile, loop_cpu_ms=args.loop_cpu_ms, label=re.sub(r"\|", "/", args.label)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
