"""`python -m bench --candidates`: the embedding models side by side, as default candidates.

For each model (MiniLM, the default; all-mpnet-base-v2 when installed; use-multilingual-3 and
multilingual-e5-small when installed), in one run, through the commands a user runs
(`python -m indexer import / reindex / calibrate / eval`, the model chosen by
ROUTER_EMBEDDING__MODEL, one data directory per model and data set):

- CLINC150: routes from train (oos excluded), parameters calibrated on val, scored on test
  (in-scope accuracy, fallback recall); the index build time of its 15,000 examples;
- the shipped routes: evals/shipped-test.jsonl with the shipped parameters (calibrated for
  MiniLM) and with parameters calibrated for the model on evals/shipped-val.jsonl; then
  evals/multilingual.jsonl, language by language, with the latter;
- the multi-turn sets (sgd_multiturn, multiwoz_multiturn): routes from routes_train.jsonl, 20%
  of it held out to calibrate the single-message parameters, every dev conversation routed
  turn by turn with the conversation rule at its defaults;
- speed, each model in a process of its own (`bench.worker`): one query's encode, p50/p99,
  idle and beside a CPU-heavy neighbour process (the probes interleaved, so load from
  elsewhere hits every model alike), and the worker's memory (RSS after load and peak).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.candidates_report import render
from bench.contention import Timed, idle_and_loaded
from bench.machine import load_average, machine_facts
from bench.sections import write_section
from bench.worker import Worker
from router_core.embedding import DEFAULT_MODEL, PACKAGED_MODELS, installed
from router_core.embedding.quality_model import MPNET_NAME, check_assembled, default_location

REPO = Path(__file__).resolve().parents[1]
EVALS = REPO / "evals"
MULTILINGUAL = EVALS / "multilingual.jsonl"
MULTI_TURN = ("sgd_multiturn", "multiwoz_multiturn")
LATENCY_QUERIES = 200
Log = Callable[[str], None]


def candidate_models(*, skip_mpnet: bool, log: Log) -> list[str]:
    """MiniLM first (the baseline), then every other installed candidate."""
    models = [DEFAULT_MODEL]
    if skip_mpnet:
        log(f"{MPNET_NAME}: skipped")
    elif check_assembled(default_location()) is None:
        models.append(MPNET_NAME)
    else:
        log(f"{MPNET_NAME}: not installed (bin/setup --mpnet), left out")
    for model in PACKAGED_MODELS:
        if installed(model):
            models.append(model.name)
        else:
            log(f"{model.name}: not installed (bin/setup --multilingual), left out")
    return models


class Indexer:
    """`python -m indexer` for one model, its converted files cached under `cache`."""

    def __init__(self, model: str, cache: Path, log: Log) -> None:
        self.model = model
        self.env = {**os.environ, "ROUTER_EMBEDDING__MODEL": model, "ROUTER_INDEX__MODELS_DIR": str(cache)}
        self.log = log

    def run(self, *args: str | Path) -> str:
        """Run one command; its stdout, or RuntimeError with its stderr."""
        command = [sys.executable, "-m", "indexer", *map(str, args)]
        done = subprocess.run(command, cwd=REPO, env=self.env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[2:])} failed ({done.returncode}): {done.stderr[-1500:]}")
        return done.stdout

    def reindex(self, routes: Path, data: Path) -> float:
        """Re-index; the index time it reports (model load excluded)."""
        out = self.run("reindex", "--routes", routes, "--data-dir", data, "--quiet")
        found = re.search(r"index time ([0-9.]+) s", out)
        return float(found.group(1)) if found else float("nan")

    def calibrate(self, file: Path, routes: Path, data: Path, work: Path) -> dict[str, Any]:
        """Calibrate on `file`, write the parameters, re-index; the chosen parameters."""
        out = work / f"calibrate-{file.stem}.json"
        self.run("calibrate", file, "--routes", routes, "--data-dir", data, "--quiet", "--write", "--json", out)
        params: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))["result"]["params"]
        out.unlink()  # the full search table is large
        self.reindex(routes, data)
        return params

    def eval(self, file: Path, routes: Path, data: Path, work: Path) -> dict[str, Any]:
        """`eval FILE --json`: the report."""
        out = work / f"eval-{file.stem}.json"
        self.run("eval", file, "--routes", routes, "--data-dir", data, "--quiet", "--json", out)
        report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))["report"]
        return report


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The figures the table shows from an `eval` report of single messages."""
    keys = ("queries", "accuracy", "in_scope_accuracy", "fallback_recall", "fallback_precision")
    return {k: report[k] for k in keys if k in report}


def clinc(ix: Indexer, datasets: Path, work: Path, *, quick: bool) -> dict[str, Any]:
    """CLINC150 routes from train, calibrated on val, scored on test; the build time."""
    folder = datasets / "clinc150"
    routes, data = work / "clinc-routes", work / "clinc-data"
    train, val, test = (folder / f"{s}.jsonl" for s in ("train", "val", "test"))
    if quick:  # a few intents only: a smoke run of the whole path
        train, val, test = (_few_labels(p, work / f"quick-{p.name}", 10) for p in (train, val, test))
    ix.run("import", train, "--out", routes, "--quiet")
    build_s = ix.reindex(routes, data)
    params = ix.calibrate(val, routes, data, work)
    return {"index_build_s": build_s, "params": params, "test": headline(ix.eval(test, routes, data, work))}


def shipped(ix: Indexer, work: Path, languages: dict[str, Path]) -> dict[str, Any]:
    """The shipped routes: the shipped test file as shipped and calibrated; the multilingual file."""
    routes, data = work / "shipped-routes", work / "shipped-data"
    shutil.copytree(REPO / "routes", routes)
    ix.reindex(routes, data)
    as_shipped = headline(ix.eval(EVALS / "shipped-test.jsonl", routes, data, work))
    params = ix.calibrate(EVALS / "shipped-val.jsonl", routes, data, work)
    calibrated = headline(ix.eval(EVALS / "shipped-test.jsonl", routes, data, work))
    per_language = {lang: headline(ix.eval(path, routes, data, work)) for lang, path in languages.items()}
    return {"as_shipped": as_shipped, "params": params, "calibrated": calibrated, "multilingual": per_language}


def multi_turn(ix: Indexer, datasets: Path, name: str, work: Path) -> dict[str, Any]:
    """Routes from routes_train.jsonl (20% held out to calibrate on), every dev conversation routed."""
    folder = datasets / name
    routes, data, val = work / f"{name}-routes", work / f"{name}-data", work / f"{name}-val.jsonl"
    ix.run("import", folder / "routes_train.jsonl", "--out", routes, "--val-share", "0.2", "--val-out", val, "--quiet")
    ix.reindex(routes, data)
    params = ix.calibrate(val, routes, data, work)
    report = ix.eval(folder / "dev_conversations.jsonl", routes, data, work)
    return {"params": params, "scores": report["scores"], "last_message": report["last_message"]}


def split_languages(source: Path, work: Path) -> dict[str, Path]:
    """The multilingual file cut into one file per language (its `lang` field), in file order."""
    rows: dict[str, list[str]] = {}
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.setdefault(str(json.loads(line)["lang"]), []).append(line)
    out = {}
    for lang, lines in rows.items():
        path = work / f"multilingual-{lang}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out[lang] = path
    return out


def _few_labels(source: Path, target: Path, labels: int) -> Path:
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    keep = sorted({r["label"] for r in rows if r["label"] != "oos"})[:labels]
    chosen = [r for r in rows if r["label"] in keep or r["label"] == "oos"]
    target.write_text("".join(json.dumps(r) + "\n" for r in chosen), encoding="utf-8")
    return target


def memory_mib(pid: int) -> dict[str, float]:
    """Resident memory of a process now and at its peak (Linux /proc), MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mib": fields.get("VmRSS", 0.0), "peak_mib": fields.get("VmHWM", 0.0)}


def speed(models: Sequence[str], cache: Path, work: Path, queries: Sequence[str], log: Log) -> dict[str, Any]:
    """Every model in a worker process: load, one query's encode idle and beside the neighbour, memory."""
    workers = {m: Worker(m, "onnx", 0, cache, label=m) for m in models}
    try:
        out: dict[str, Any] = {
            m: {"load_s": w.facts["load_s"], "after_load": memory_mib(w.pid)} for m, w in workers.items()
        }
        probes = {m: (lambda q, w=w: Timed(w.seconds("encode", text=q))) for m, w in workers.items()}
        timings = idle_and_loaded(probes, queries, queries, work)
        for m, w in workers.items():
            out[m].update(encode=timings[m], after_encode=memory_mib(w.pid))
            log(f"{m}: encode p50 {timings[m]['idle'].get('p50_ms')} ms idle, {out[m]['after_encode']} MiB")
        return out
    finally:
        for w in workers.values():
            w.close()


def run_candidates(
    datasets: Path, work: Path, *, quick: bool, skip_mpnet: bool, log: Log, command: str, checkpoint: Path
) -> dict[str, Any]:
    """Every measurement of every candidate; the result as JSON-ready data, also written to
    `checkpoint` after each model (a long run that fails late keeps what it measured)."""
    started = time.perf_counter()
    models = candidate_models(skip_mpnet=skip_mpnet, log=log)
    cache = work / "derived"
    languages = split_languages(MULTILINGUAL, work)
    result: dict[str, Any] = {
        "command": command,
        "models": models,
        "load_average": {"start": load_average()},
        "machine": machine_facts(REPO),
        "quick": quick,
        "quality": {},
    }
    queries = [json.loads(x)["text"] for x in (EVALS / "shipped-val.jsonl").read_text(encoding="utf-8").splitlines()]
    for model in models:
        ix = Indexer(model, cache, log)
        folder = work / re.sub(r"[^A-Za-z0-9_.-]+", "_", model)
        folder.mkdir(parents=True)
        t0 = time.perf_counter()
        quality: dict[str, Any] = {"clinc150": clinc(ix, datasets, folder, quick=quick)}
        log(f"{model}: CLINC150 {quality['clinc150']['test']} (build {quality['clinc150']['index_build_s']} s)")
        quality["shipped"] = shipped(ix, folder, languages)
        log(f"{model}: shipped {quality['shipped']['calibrated']}")
        if not quick:
            for name in MULTI_TURN:
                quality[name] = multi_turn(ix, datasets, name, folder)
                log(f"{model}: {name} {quality[name]['scores']}")
        quality["seconds"] = round(time.perf_counter() - t0, 1)
        result["quality"][model] = quality
        checkpoint.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    result["load_average"]["before_speed"] = load_average()
    n = 40 if quick else LATENCY_QUERIES
    result["speed"] = speed(models, cache, work, (queries * (n // len(queries) + 1))[:n], log)
    result["load_average"]["end"] = load_average()
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def run_candidates_command(args: argparse.Namespace, given: list[str], log: Log, results: Path) -> int:
    """`--candidates`: measure, write the JSON, print and (full runs) rewrite the section."""
    out = args.out or results / f"candidates-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="router-candidates-") as tmp:
        result = run_candidates(
            args.datasets,
            Path(tmp),
            quick=args.quick,
            skip_mpnet=args.skip_mpnet,
            log=log,
            command=" ".join(["python -m bench", *given]),
            checkpoint=out,
        )
    out.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    section = render(result)
    print(section)
    if args.write_markdown == "yes" or (args.write_markdown == "auto" and not args.quick):
        write_section(args.markdown, "candidates", section)
        log(f"rewrote the candidates section of {args.markdown}")
    log(f"wrote {out}")
    return 0
