"""Profile one service process under load: the CPU each of its threads spends per request (from
/proc, exact) and a py-spy profile of its event loop split by part of the request
(`bench.profile_table`).

The index is built once in `--data-dir` from `--routes` (reused when it exists). The service is
`python -m service` of this checkout, or of `--service-root` (the code before), one process;
`bench.throughput` loads it with `--clients` for the window, and py-spy (`pip install py-spy`)
samples it for `--seconds` in the middle of it.

    python -m bench.profile_service --routes DIR --data-dir DIR [--service-root DIR] [--clients 32]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from bench.profile_table import table
from devkit.service_process import service_process
from devkit.serving import ROOT


def thread_ticks(pid: int) -> dict[int, int]:
    """CPU clock ticks (user + system) of each thread of `pid`."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        out[int(task.name)] = int(fields[11]) + int(fields[12])
    return out


def process_ticks(pid: int) -> int:
    """CPU clock ticks of the whole process, threads that have ended included (the model's
    runtime may run a pass on short-lived threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def classify_requests(url: str) -> float:
    """POST /v1/classify requests the service has counted."""
    text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith('router_http_requests_total{endpoint="/v1/classify"')
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the threads' CPU per request and the event loop's table."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile_service", description=__doc__)
    parser.add_argument("--routes", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True, help="JSON list of query texts for the load")
    parser.add_argument("--service-root", type=Path, default=ROOT)
    parser.add_argument("--label", default="this code")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--out", type=Path, default=Path("profile.txt"))
    args = parser.parse_args(argv)
    env = {"ROUTER_ROUTES_DIR": str(args.routes), "ROUTER_INDEX__DATA_DIR": str(args.data_dir)}
    if not (args.data_dir / "router" / "LIVE").exists():
        subprocess.run([sys.executable, "-m", "indexer", "--quiet"], cwd=ROOT, env={**os.environ, **env}, check=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    workers = 1 if args.service_root == ROOT else None  # older code has no worker setting: one process
    with service_process(env, workers=workers, root=args.service_root) as service:
        command = [sys.executable, "-m", "bench.throughput", service.url, str(args.queries)]
        command += ["--levels", str(args.clients), "--duration", str(args.seconds + 8), "--warmup", "1"]
        load = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(4)
        pid = service.proc.pid
        ticks0, whole0, requests0 = thread_ticks(pid), process_ticks(pid), classify_requests(service.url)
        spy_command = [spy, "record", "-p", str(pid), "--rate", "200", "--duration", str(int(args.seconds))]
        spy_command += ["--format", "raw", "--threads", "-o", str(args.out)]
        subprocess.run(spy_command, capture_output=True, check=True)
        ticks1, whole1, requests1 = thread_ticks(pid), process_ticks(pid), classify_requests(service.url)
        throughput = json.loads(load.communicate()[0])["levels"][0]
    requests = requests1 - requests0
    tick_ms = 1e3 / os.sysconf("SC_CLK_TCK")
    per_thread = {
        tid: round((ticks1[tid] - ticks0.get(tid, 0)) * tick_ms / requests, 3) for tid in ticks1 if tid in ticks0
    }
    loop_ms = per_thread[pid]
    figures = {
        "label": args.label,
        "clients": args.clients,
        "requests_profiled": requests,
        "requests_per_s": throughput["requests_per_s"],
        "latency": throughput["latency"],
        "event_loop_cpu_ms_per_request": loop_ms,
        "process_cpu_ms_per_request": round((whole1 - whole0) * tick_ms / requests, 3),
    }
    print(json.dumps(figures))
    print(table(args.out, loop_cpu_ms=loop_ms, label=args.label))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
