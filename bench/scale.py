"""Cost at scale, on paper: what serving a given request rate takes, derived from two runs of
`python -m bench.serving --json` (CLINC150's 15,000 examples and the shipped 320), nothing else.

- queries/s per core: the busiest measured configuration (32 clients) over the cores it had;
- memory per worker: RSS and PSS of the workers of that configuration;
- index memory per 10,000 examples: one process's RSS on the big index less on the small one,
  per 10,000 examples more;
- the deployment for `--rate` requests/s: cores at `--utilisation` of the measured rate per
  core, workers (one per core), replicas of `--workers-per-replica` workers plus one spare.

    python -m bench.scale CLINC.json SHIPPED.json [--rate 1000] [--write]
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report import write_named_section


def _best(result: dict[str, Any]) -> dict[str, Any]:
    """The configuration of this code with the most requests/s at 32 clients."""
    ours = [r for r in result["runs"] if not r["label"].startswith("before")]
    return max(ours, key=lambda r: _at32(r)["requests_per_s"])


def _at32(run: dict[str, Any]) -> dict[str, Any]:
    level: dict[str, Any] = next(lv for lv in run["throughput"] if lv["clients"] == 32)
    return level


def _one_process(result: dict[str, Any]) -> dict[str, Any]:
    run: dict[str, Any] = next(r for r in result["runs"] if r["label"].startswith("1 process"))
    return run


def figures(
    big: dict[str, Any], small: dict[str, Any], rate: float, utilisation: float, per_replica: int
) -> dict[str, Any]:
    """Every derived figure, with the measured ones it comes from."""
    best = _best(big)
    cores = big["cores"]
    per_core = _at32(best)["requests_per_s"] / cores
    per_core_small = _at32(_best(small))["requests_per_s"] / small["cores"]
    rss_big, rss_small = _one_process(big)["memory"][0]["rss"], _one_process(small)["memory"][0]["rss"]
    per_10k = (rss_big - rss_small) / (big["examples"] - small["examples"]) * 10_000
    workers = math.ceil(rate / (per_core * utilisation))
    replicas = math.ceil(workers / per_replica) + 1
    pss = sum(m["pss"] for m in best["memory"]) / len(best["memory"])
    rss = sum(m["rss"] for m in best["memory"]) / len(best["memory"])
    return {
        "config": best["label"],
        "cores": cores,
        "per_core": round(per_core, 1),
        "per_core_small": round(per_core_small, 1),
        "examples": big["examples"],
        "rss_worker": round(rss),
        "pss_worker": round(pss),
        "index_per_10k_mb": round(per_10k, 1),
        "rate": rate,
        "utilisation": utilisation,
        "workers": workers,
        "per_replica": per_replica,
        "replicas": replicas,
        "memory_gb": round(replicas * per_replica * rss / 1024, 1),
        "stages": _one_process(big).get("stages_one_process"),  # absent in runs before it was recorded
    }


def render(f: dict[str, Any], command: str) -> str:
    """The BENCHMARKS.md section."""
    return (
        "## Cost at scale (derived)\n\n"
        f"Command: `{command}`, from the two runs of `bench.serving` above (CLINC150 and the shipped routes). "
        "Every figure below is arithmetic on those measurements; none was measured at scale.\n\n"
        "| figure | value | from |\n|---|---|---|\n"
        f"| queries/s per core, {f['examples']:,}-example index | {f['per_core']} | {f['config']}, 32 clients, "
        f"over {f['cores']} cores (the load generator ran on the same cores) |\n"
        f"| queries/s per core, 320-example index | {f['per_core_small']} | the shipped-routes run, same way |\n"
        f"| memory per worker | {f['rss_worker']} MB RSS, {f['pss_worker']} MB PSS | {f['config']}, after the "
        "run (PSS: pages shared between workers, the mapped index and libraries, counted once in total) |\n"
        f"| index memory per 10,000 examples | {f['index_per_10k_mb']} MB | one process's RSS on CLINC150 less on "
        "the shipped routes, per 10,000 examples more (measured, and noisy: the rest of a process's RSS moves by "
        "several MB between runs). What the default matrix scan holds: the float32 vectors, 15.4 MB per 10,000 "
        "examples of 384 dimensions, and the example texts; `ROUTER_INDEX__SCAN=engine` maps the shard's vector "
        "storage instead, in 32 MB chunks touched as it loads |\n"
        + (
            f"| embed / search per routed query, one process | {f['stages']['embed_ms']} / "
            f"{f['stages']['search_ms']} ms | the service's stage metrics over the whole run (exact search scans "
            "every example: it grows with the index) |\n"
            if f["stages"]
            else ""
        )
        + "\n"
        f"**{f['rate']:,.0f} requests/s** of single queries against a {f['examples']:,}-example index, each core "
        f"run at {f['utilisation']:.0%} of the measured rate (headroom for bursts and the p99): "
        f"**{f['workers']} worker processes**, one per core; as replicas of {f['per_replica']} workers (the "
        f"default's cap) that is {f['replicas'] - 1} replicas plus one spare, **{f['replicas']} replicas** of "
        f"{f['per_replica']} cores and about {f['rss_worker'] * f['per_replica'] / 1024:.1f} GB each "
        f"({f['memory_gb']} GB in all). Qdrant: the embedded index serves one machine's workers (a copy per "
        "machine, built by the re-index job there); replicas on several machines share one index through a Qdrant "
        "server (`ROUTER_INDEX__QDRANT__URL`), which then does the exact scan of every query (about half a "
        "millisecond of a core per query over 15,000 examples, scanned 16 at a time: `python -m bench.gil` below), "
        "so at this rate at least half a core of its own, growing with the index, unless the collection is given "
        "an HNSW index. On a smaller index (the shipped routes) the per-core rate is the model's, not the "
        "search's.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures, and with --write the section into BENCHMARKS.md."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("big", type=Path, help="bench.serving JSON on CLINC150")
    parser.add_argument("small", type=Path, help="bench.serving JSON on the shipped routes (--shipped)")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--utilisation", type=float, default=0.7)
    parser.add_argument("--workers-per-replica", type=int, default=4)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    big, small = (json.loads(p.read_text(encoding="utf-8")) for p in (args.big, args.small))
    f = figures(big, small, args.rate, args.utilisation, args.workers_per_replica)
    print(json.dumps(f, indent=1))
    if args.write:
        command = f"python -m bench.scale CLINC.json SHIPPED.json --rate {args.rate:g} --write"
        write_named_section(Path("BENCHMARKS.md"), "scale", render(f, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
