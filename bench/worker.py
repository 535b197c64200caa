"""One embedding setup in a process of its own, driven by the bench over a pipe.

A process that has loaded several inference runtimes runs each of them slower than a process
that holds one (measured: ONNX Runtime's one-query encode 2.6 ms alone, 5.1 ms interleaved with
torch in the same process; the service itself never loads a second runtime). So every timing
of a setup (bare encode, index build, in-process classify, re-index) runs in a worker that
loads that setup only, as the service and the indexer command do.

The worker reads one JSON request per line on stdin and answers one JSON line on stdout; a
timing is measured inside the worker, around the call alone, so the pipe costs nothing.

    python -m bench.worker <model> <backend> <threads> <models cache dir>
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from devkit.processes import stop_process

REPO = Path(__file__).resolve().parents[1]


class Worker:
    """The bench's side: start the process, send requests, stop it."""

    def __init__(self, model: str, backend: str, threads: int, cache_dir: Path, *, label: str = "") -> None:
        self.label = label or f"{model} on {backend}"
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", model, backend, str(threads), str(cache_dir)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.facts: dict[str, Any] = self._read()

    @property
    def pid(self) -> int:
        """The worker's process id (to read its memory)."""
        return self._proc.pid

    def call(self, op: str, **args: Any) -> Any:
        """Run `op` in the worker; its answer, or RuntimeError with the worker's error."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # reported by _read with the worker's stderr
        return self._read()

    def seconds(self, op: str, **args: Any) -> float:
        """The worker's own timing of `op` (the pipe excluded)."""
        answer: float = self.call(op, **args)["s"]
        return answer

    def _read(self) -> Any:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait(timeout=30)
            err = self._proc.stderr.read() if self._proc.stderr else ""
            raise RuntimeError(f"bench worker for {self.label} exited ({self._proc.returncode}): {err[-2000:]}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"bench worker for {self.label}: {answer['error']}")
        return answer["ok"]

    def close(self) -> None:
        """Stop the worker."""
        if self._proc.poll() is None:
            with contextlib.suppress(RuntimeError, OSError, ValueError):
                self.call("quit")
            stop_process(self._proc, 30, terminate=False)
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _Serve:
    """The worker's side: the loaded model and what it was asked to open."""

    def __init__(self, model: str, backend: str, threads: int, cache_dir: Path) -> None:
        from router_core import load_embedder

        t0 = time.perf_counter()
        self.embedder = load_embedder(model, backend=backend, threads=threads, cache_dir=cache_dir)
        self.facts = {
            "id": self.embedder.model_id,
            "backend": self.embedder.backend,
            "threads_used": getattr(self.embedder, "threads", threads),
            "load_s": round(time.perf_counter() - t0, 3),
        }
        self.index: Any = None

    def encode(self, text: str) -> dict[str, float]:
        t0 = time.perf_counter()
        self.embedder.encode_queries([text])
        return {"s": time.perf_counter() - t0}

    def open(self, data_dir: str) -> dict[str, str]:
        from router_core.store import EdgeStore

        store = EdgeStore(data_dir)
        version = store.live_version()
        if version is None:
            raise RuntimeError(f"no index in {data_dir}")
        if self.index is not None:
            self.index.searcher.close()
        self.index = store.open_version(version)
        return {"version": version}

    def classify(self, text: str) -> dict[str, float]:
        from router_core import Router

        if self.index is None:
            raise RuntimeError("classify before open")
        t0 = time.perf_counter()
        Router(self.index, self.embedder).classify([text])
        return {"s": time.perf_counter() - t0}

    def build(self, routes_dir: str, data_dir: str) -> dict[str, Any]:
        from bench.index_build import index_build
        from router_core import load_routes
        from router_core.store import EdgeStore

        return index_build(self.embedder, load_routes(Path(routes_dir)), EdgeStore(data_dir))

    def batching(self, texts: list[str], budget_s: float) -> dict[str, Any]:
        from bench.encode_batching import encode_by_batch_size

        return encode_by_batch_size(self.embedder, texts, budget_s=budget_s)

    def reindex(self, routes_dir: str, data_dir: str, tag: str) -> dict[str, Any]:
        from bench.reindex_speed import reindex_in_process
        from router_core.store import EdgeStore

        return reindex_in_process(Path(routes_dir), EdgeStore(data_dir), self.embedder, tag)


def main(argv: list[str]) -> int:
    model, backend, threads, cache_dir = argv
    out = sys.stdout
    sys.stdout = sys.stderr  # anything a library prints must not break the protocol
    try:
        serve = _Serve(model, backend, int(threads), Path(cache_dir))
    except Exception as exc:
        print(json.dumps({"error": f"cannot load: {exc}"}), file=out, flush=True)
        return 1
    print(json.dumps({"ok": serve.facts}), file=out, flush=True)
    ops: dict[str, Callable[..., Any]] = {
        "encode": serve.encode,
        "open": serve.open,
        "classify": serve.classify,
        "build": serve.build,
        "batching": serve.batching,
        "reindex": serve.reindex,
    }
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        if op == "quit":
            print(json.dumps({"ok": None}), file=out, flush=True)
            return 0
        try:
            answer = {"ok": ops[op](**request)}
        except Exception as exc:
            answer = {"error": f"{op}: {type(exc).__name__}: {exc}"}
        print(json.dumps(answer, default=str), file=out, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
