"""How fast the indexer CLI starts: `--help`, `eval --help`, and an `eval` on an existing index
(time to its first progress line, to its model being loaded, and to its end), each command run
as a fresh process, as a user types it.

    .venv/bin/python -m bench.startup [--rounds 5] [--compare DIR]

An index of the shipped routes is built first in a temporary directory (its model conversion
cached as usual, so the timed runs convert nothing). `python -c pass` is timed in the same run
as the floor every command pays; `--compare DIR` also times the same commands with the code of
another checkout of the project (e.g. an export of main: `git archive main | tar -x -C DIR`),
run by this interpreter, side by side. Prints medians (and the fastest round) in seconds.
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(r"\d+/\d+ \(\d+%\)")  # a progress line: "label  done/total (share)  elapsed"
TARGETS = {"--help": 0.5, "eval --help": 0.5, "eval: first progress line": 2.0}


@dataclass(frozen=True)
class Timed:
    """When a run printed what (seconds from its start), and its exit status."""

    first_progress: float | None
    model_loaded: float | None
    end: float
    code: int


def timed(command: Sequence[str], cwd: Path, env: dict[str, str]) -> Timed:
    """Run `command`, noting when the first progress line (stderr) and the model's load line
    (stdout) arrive, and when it ends."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first: float | None = None
    loaded: float | None = None
    with selectors.DefaultSelector() as sel:
        assert proc.stdout is not None
        assert proc.stderr is not None
        sel.register(proc.stdout, selectors.EVENT_READ, "out")
        sel.register(proc.stderr, selectors.EVENT_READ, "err")
        streams = 2
        while streams:
            for key, _ in sel.select():
                line = key.fileobj.readline()  # type: ignore[union-attr]  # a text pipe
                now = time.perf_counter() - started
                if not line:
                    sel.unregister(key.fileobj)
                    streams -= 1
                elif key.data == "err" and first is None and PROGRESS.search(line):
                    first = now
                elif key.data == "out" and loaded is None and line.startswith("model: "):
                    loaded = now
    code = proc.wait()
    return Timed(first, loaded, time.perf_counter() - started, code)


def build_index(data: Path, env: dict[str, str]) -> None:
    """The shipped routes indexed into `data` (converting the model first if this machine never did)."""
    command = [sys.executable, "-m", "indexer", "reindex", "--routes", "routes", "--data-dir", str(data), "--quiet"]
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def commands(data: Path) -> dict[str, list[str]]:
    """What is timed, by name."""
    py = [sys.executable]
    where = ["--routes", str(ROOT / "routes"), "--data-dir", str(data)]
    return {
        "python -c pass": [*py, "-c", "pass"],
        "--help": [*py, "-m", "indexer", "--help"],
        "eval --help": [*py, "-m", "indexer", "eval", "--help"],
        "eval": [*py, "-m", "indexer", "eval", str(ROOT / "evals" / "shipped-test.jsonl"), *where],
    }


def measure(cwd: Path, data: Path, rounds: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Each command `rounds` times, interleaved, so that a busy moment hits all of them."""
    figures: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, command in commands(data).items():
            run = timed(command, cwd, env)
            if run.code != 0:
                raise SystemExit(f"{name} failed (exit {run.code}) in {cwd}")
            if name == "eval":
                figures.setdefault("eval: first progress line", []).append(run.first_progress or float("nan"))
                figures.setdefault("eval: model loaded", []).append(run.model_loaded or float("nan"))
                figures.setdefault("eval: done (80 queries)", []).append(run.end)
            else:
                figures.setdefault(name, []).append(run.end)
    return figures


def report(columns: dict[str, dict[str, list[float]]]) -> None:
    """One row per measure: median (fastest) per code, the target, the ratio to the first column."""
    names = list(columns)
    print(f"{'measure':28} " + " ".join(f"{n:>22}" for n in names) + f" {'target':>8}")
    first = columns[names[0]]
    for measure in first:
        cells = []
        for n in names:
            values = columns[n][measure]
            cells.append(f"{statistics.median(values):7.2f} s ({min(values):5.2f})")
        target = f"<= {TARGETS[measure]} s" if measure in TARGETS else ""
        print(f"{measure:28} " + " ".join(f"{c:>22}" for c in cells) + f" {target:>8}")
    if len(names) > 1:
        base = columns[names[1]]
        print(f"\nratio {names[0]} / {names[1]} (medians):")
        for measure in first:
            print(f"  {measure:28} {statistics.median(first[measure]) / statistics.median(base[measure]):.2f}x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs of each command (default 5)")
    parser.add_argument("--compare", type=Path, metavar="DIR", help="another checkout to time side by side")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # stdout lines arrive when printed
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        data = Path(tmp) / "data"
        build_index(data, env)
        columns = {"this checkout": measure(ROOT, data, args.rounds, env)}
        if args.compare is not None:
            columns[str(args.compare)] = measure(args.compare.resolve(), data, args.rounds, env)
    print(f"load average at end: {os.getloadavg()}\n")
    report(columns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
