"""Render a result document as Markdown, and write it into BENCHMARKS.md between markers.

`python -m bench.report RESULT.json [--markdown BENCHMARKS.md]` re-renders a saved run; every
figure comes from the JSON, none is typed by hand.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
HEADER = """# Benchmarks

Routing quality on CLINC150 against semantic-router 1.1, and speed, measured in one run on one
machine, with three embedding setups side by side: all-MiniLM-L6-v2 on torch with 2 threads
(the path before issue 15), all-MiniLM-L6-v2 on ONNX Runtime (the default) and
all-mpnet-base-v2 on ONNX Runtime (the quality model, when installed). Each setup is timed in
a process of its own that loads only that model (`bench/worker.py`: bare encode, index build,
in-process classify), and served by `python -m service` in its own process, timed by a
keep-alive client in the bench process: one inference runtime per process, as the service and
the indexer run (a process holding several runtimes runs each slower). Reproduce with:

    python -m bench

(`--quick` for a small smoke run, `--skip-peer` to leave semantic-router out,
`--skip-finetune` to leave out the fine-tuned models, `--skip-mpnet` to leave out the quality
model, `--help` for the rest). It prints the tables below, writes every figure to
`bench/results/<timestamp>.json` and rewrites the section between the bench markers; text
outside them is kept.

"""

Result = Mapping[str, Any]
Row = list[str]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _ms(summary: Mapping[str, Any] | None) -> str:
    if not summary or "p50_ms" not in summary:
        return "n/a"
    return f"{summary['p50_ms']:.1f} / {summary['p99_ms']:.1f} ms"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _params(p: Mapping[str, Any] | None) -> str:
    if not p:
        return ""
    text = f"k={p['k']}, threshold={p['threshold']:.3g}"
    if p.get("margin"):
        text += f", margin={p['margin']:.3g}"
    if p.get("vote", "count") != "count":
        text += f", vote={p['vote']}"
    if p.get("tie_break", "sum") != "sum":
        text += f", tie_break={p['tie_break']}"
    if p.get("threshold_mode", "neighbour") != "neighbour":
        text += f", threshold_mode={p['threshold_mode']}"
    if p.get("route_thresholds"):
        text += f", {len(p['route_thresholds'])} per-route thresholds"
    return text


def _settings(key: str, q: Mapping[str, Any], setup: Mapping[str, Any]) -> str:
    for prefix in ("mpnet_", "int8_"):
        if key.startswith(prefix):
            key = key.replace(prefix, "ours_", 1)
    if key == "ours_default":
        return f"routes' defaults ({_params(q.get('params'))})"
    if key == "ours_calibrated":
        return f"calibrated on val ({_params(q.get('params'))})"
    if key == "ours_finetuned_default":
        return f"fine-tuned model, routes' defaults ({_params(q.get('params'))})"
    if key == "ours_finetuned_calibrated":
        return f"fine-tuned model, calibrated on val ({_params(q.get('params'))})"
    if key == "peer_default":
        return (
            f"its defaults (top_k={setup.get('top_k', 5)}, {setup.get('aggregation', 'mean')} "
            "aggregation, no threshold)"
        )
    if key == "peer_fit":
        return f"its fit on val, confidence_threshold={setup.get('fit_threshold', 0.5)}"
    return (
        f"its fit on val, confidence threshold {q.get('threshold', 0):.3f} "
        "(tuned on val by the bench, our calibration objective)"
    )


def quality_rows(result: Result) -> list[Row]:
    """One row per router and setting."""
    quality = result.get("quality", {})
    peer = result.get("peer", {})
    minilm, mpnet = "this router, all-MiniLM-L6-v2", "this router, all-mpnet-base-v2"
    names = {
        "ours_default": minilm,
        "ours_calibrated": minilm,
        "ours_finetuned_default": minilm,
        "ours_finetuned_calibrated": minilm,
        "mpnet_default": mpnet,
        "mpnet_calibrated": mpnet,
        "mpnet_finetuned_default": mpnet,
        "mpnet_finetuned_calibrated": mpnet,
        "int8_default": f"{minilm}, int8 weights (opt-in)",
        "int8_calibrated": f"{minilm}, int8 weights (opt-in)",
        "peer_default": f"semantic-router {peer.get('library', {}).get('version', '1.1')} (all-MiniLM-L6-v2)",
    }
    names["peer_fit"] = names["peer_fit_tuned"] = names["peer_default"]
    rows = []
    for key, router in names.items():
        q = quality.get(key)
        if q:
            rows.append(
                [
                    router,
                    _settings(key, q, peer.get("setup", {})),
                    _pct(q["in_scope_accuracy"]),
                    _pct(q["fallback_recall"]),
                    _pct(q["fallback_precision"]),
                    _pct(q["accuracy"]),
                ]
            )
    return rows


def _build_rows(result: Result) -> list[Row]:
    rows: list[Row] = []
    model = result.get("model")
    if model:
        rows.append(
            [f"model load in process (load_embedder, {model.get('backend', 'torch')})", f"{model['load_s']:.2f} s"]
        )
    build = result.get("speed", {}).get("index_build")
    if build and "bare_encode_s" in build:
        n = build["examples"]
        runs = " / ".join(f"{r:.1f}" for r in build.get("bare_encode_runs_s", []))
        rows.append(
            [
                f"bare `model.encode` of the {n} examples (runs before / after the build)",
                f"{build['bare_encode_s']:.1f} s ({build['bare_encode_per_s']:.0f} examples/s; runs {runs} s)",
            ]
        )
        rows.append(
            [
                f"index build, {n} examples (run_reindex into embedded Qdrant)",
                f"{build['build_s']:.1f} s ({build['examples_per_s']:.0f} examples/s, "
                f"{_x(build['vs_bare_encode'])} the bare encode throughput)",
            ]
        )
    tuned = result.get("finetune")
    if tuned:
        rows.append(
            [
                f"fine-tuning ({tuned['steps']} steps of MultipleNegativesRankingLoss, batch "
                f"{tuned['config']['batch_size']}, CPU), then indexing with the tuned model",
                f"{tuned['train_s']:.0f} s training, {tuned['index_build_s']:.1f} s index build",
            ]
        )
    return rows


def _latency_rows(result: Result) -> list[Row]:
    speed = result.get("speed", {})
    rows: list[Row] = []
    lat = speed.get("latency")
    if lat:
        rows.append(["bare `model.encode` of one query, p50 / p99", _ms(lat["bare_encode"])])
        for key, label in (("in_process", "in process (Router.classify)"), ("http", "over HTTP")):
            ratio = _x(lat[key].get("p50_vs_bare_encode"))
            rows.append(
                [
                    f"classify {label}, 1 client, p50 / p99",
                    f"{_ms(lat[key])} ({ratio} the bare encode at p50)",
                ]
            )
    for level in speed.get("encode_batching", {}).get("levels", []):
        rows.append(
            [
                f"bare `model.encode`, batches of {level['batch']} (ceiling for batching)",
                f"{level['queries_per_s']:.1f} queries/s ({_x(level.get('vs_batch_1'))} batch 1)",
            ]
        )
    for level in speed.get("throughput", {}).get("levels", []):
        rows.append(
            [
                f"throughput over HTTP, {level['clients']} concurrent client(s)",
                f"{level['requests_per_s']:.1f} req/s ({_x(level.get('vs_single_client'))} "
                f"1 client; latency p50 / p99 {_ms(level['latency'])})",
            ]
        )
    return rows


def _reindex_rows(result: Result) -> list[Row]:
    reindex = result.get("speed", {}).get("reindex", {})
    rows: list[Row] = []
    inproc = reindex.get("in_process")
    if inproc:
        rows.append(
            [
                "re-index after one route change, in process (model loaded)",
                f"{inproc['total_s']:.2f} s (load routes {inproc['load_routes_s']:.2f} s, "
                f"run_reindex {inproc['run_reindex_s']:.2f} s; embedded {inproc['embedded']}, "
                f"reused {inproc['reused']})",
            ]
        )
    for key, label in (("cli", ""), ("cli_today", ", today's path (torch)")):
        cli = reindex.get(key)
        if cli:
            rows.append(
                [
                    f"re-index after one route change, `python -m indexer` (fresh process{label}; "
                    f"backend {cli.get('backend') or 'torch'})",
                    f"{cli['wall_s']:.2f} s wall (routes + model load {cli['routes_and_model_load_s']} s, "
                    f"index {cli['index_s']} s)",
                ]
            )
    return rows


def _peer_rows(result: Result) -> list[Row]:
    peer = result.get("peer", {})
    rows: list[Row] = []
    timings = peer.get("timings")
    if timings:
        rows.append(
            [
                f"semantic-router: index build, {timings['utterances']} utterances (LocalIndex)",
                f"{timings['index_build_s']:.1f} s",
            ]
        )
    lat = peer.get("latency")
    if lat:
        rows.append(
            [
                "semantic-router: `router(q)` in process, p50 / p99",
                f"{_ms(lat.get('classify'))} (its bare encode {_ms(lat.get('bare_encode'))})",
            ]
        )
    return rows


def speed_rows(result: Result) -> list[Row]:
    """One row per speed figure."""
    return _build_rows(result) + _latency_rows(result) + _reindex_rows(result) + _peer_rows(result)


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _pair(summary: Mapping[str, Any] | None) -> str:
    if not summary or "p50_ms" not in summary:
        return "n/a"
    return f"{summary['p50_ms']:.1f} / {summary['p99_ms']:.1f}"


def _times(value: Any, base: Any) -> str:
    if not isinstance(value, int | float) or not isinstance(base, int | float) or not base:
        return ""
    return f" ({value / base:.2f}x)"


def _build(builds: Mapping[str, Any], key: str) -> str:
    seconds, today = builds.get(key), builds.get("today")
    if not isinstance(seconds, int | float):
        return "n/a"
    if key == "today" or not isinstance(today, int | float):
        return f"{seconds:.1f}"
    return f"{seconds:.1f} ({today / seconds:.2f}x)"


def _setup_rows(result: Result, keys: Sequence[str]) -> list[Row]:
    models, speed = result.get("models", {}), result.get("speed", {})
    bare, service = speed.get("bare_encode", {}), speed.get("service", {})
    builds = speed.get("index_build_by_setup", {})
    n = _get(speed, "index_build", "examples")

    def row(label: str, cell: Any) -> Row:
        return [label, *[cell(k) for k in keys]]

    def top(key: str) -> Any:
        levels = _get(service, key, "throughput", "levels") or []
        return next((lv["requests_per_s"] for lv in levels if lv.get("clients") == 32), None)

    def conversions(key: str) -> str:
        done = _get(models, key, "conversions") or {}
        return ", ".join(f"{k} {v:.1f} s" for k, v in done.items()) or "none"

    def quality(key: str, cal: str) -> str:
        q = _get(result, "quality", cal)
        return f"{_pct(q['in_scope_accuracy'])} / {_pct(q['fallback_recall'])}" if q else "n/a"

    today_bare = _get(bare, "today", "idle", "p50_ms")
    return [
        row("backend, intra-op threads", lambda k: f"{_get(models, k, 'backend')}, {_get(models, k, 'threads_used')}"),
        row(
            "model load, fresh process to first query (loader part), s",
            lambda k: f"{_get(models, k, 'fresh_process', 'wall_s')} ({_get(models, k, 'fresh_process', 'load_s')})",
        ),
        row("conversion on first use (cached under the data directory)", conversions),
        row(f"index build, {n} examples, s (speed vs today)", lambda k: _build(builds, k)),
        row(
            "bare encode of one query, p50 / p99 ms, idle (p50 vs today)",
            lambda k: _pair(_get(bare, k, "idle")) + _times(_get(bare, k, "idle", "p50_ms"), today_bare),
        ),
        row(
            "bare encode beside a CPU-heavy neighbour, p50 / p99 ms (p99 vs idle)",
            lambda k: f"{_pair(_get(bare, k, 'neighbour'))} ({_x(_get(bare, k, 'p99_ratio'))})",
        ),
        row(
            "classify over HTTP, 1 client, p50 / p99 ms (p50 vs bare encode)",
            lambda k: (
                f"{_pair(_get(service, k, 'latency', 'http'))} "
                f"({_x(_get(service, k, 'latency', 'http', 'p50_vs_bare_encode'))})"
            ),
        ),
        row(
            "classify over HTTP beside the neighbour, p50 / p99 ms (p99 vs idle)",
            lambda k: (
                f"{_pair(_get(service, k, 'contention', 'http', 'neighbour'))} "
                f"({_x(_get(service, k, 'contention', 'http', 'p99_ratio'))})"
                if _get(service, k, "contention")
                else "not measured"
            ),
        ),
        row(
            "throughput over HTTP, 32 clients, req/s (vs today)",
            lambda k: f"{top(k)}{_times(top(k), top('today'))}" if top(k) else "n/a",
        ),
        row(
            "CLINC150 test, calibrated: in-scope accuracy / fallback recall",
            lambda k: {
                "default": quality(k, "ours_calibrated"),
                "quality": quality(k, "mpnet_calibrated"),
                "int8": quality(k, "int8_calibrated"),
            }.get(k, "decision by decision: see below"),
        ),
    ]


def backend_section(result: Result) -> list[str]:
    """Issue 15: the embedding setups side by side, and today's path decision by decision."""
    models = result.get("models")
    if not models:
        return []
    keys = list(models)
    lines = ["### Embedding setups side by side (issue 15)", ""]
    lines += _table(["measure", *[models[k].get("label", k) for k in keys]], _setup_rows(result, keys))
    for key, who in (
        ("decisions_vs_today", "the default (ONNX Runtime, "),
        ("int8_decisions_vs_today", "int8 weights ("),
    ):
        decisions = result.get(key)
        if not decisions:
            continue
        lines += [
            "",
            f"CLINC150 test routed by today's path (torch, its own index) and by {who}its own index) under "
            "the same decision parameters:",
            "",
        ]
        rows = [
            [name, f"{d['changed']} of {d['queries']}", f"{d['max_score_difference']:.2g}"]
            for name, d in decisions.items()
        ]
        lines += _table(["parameters", "decisions changed", "largest score difference"], rows)
        for name, d in decisions.items():
            for ex in d.get("examples", [])[:10]:
                lines.append(
                    f"- {name}: {ex['query']!r}: {ex['before']} ({ex['score_before']}) -> "
                    f"{ex['after']} ({ex['score_after']})"
                )
    return lines


def _intro(result: Result) -> list[str]:
    machine = result.get("machine", {})
    pkgs = machine.get("packages", {})
    load = result.get("load_average", {})
    peer = result.get("peer", {})
    lines = [
        f"`{result.get('command', 'python -m bench')}`, started {result.get('started_at', '?')}, "
        f"took {result.get('duration_s', 0):.0f} s; commit {machine.get('commit')}.",
        "",
        f"Machine: {machine.get('usable_cores')} cores ({machine.get('cpu')}), "
        f"{machine.get('memory_gib')} GiB; Python {machine.get('python')}, "
        f"torch {pkgs.get('torch')} ({machine.get('torch_threads')} threads), "
        f"sentence-transformers {pkgs.get('sentence-transformers')}, "
        f"qdrant-edge-py {pkgs.get('qdrant-edge-py')}. "
        f"Load average (1/5/15 min) at start {load.get('start')}, at end {load.get('end')}.",
    ]
    versions = peer.get("versions")
    if versions:
        lines.append(
            f"Peer: semantic-router {versions.get('semantic-router')} in its own venv "
            f"(torch {versions.get('torch')}, sentence-transformers "
            f"{versions.get('sentence-transformers')}), the same model files loaded by path."
        )
    elif peer.get("skipped") or peer.get("error"):
        lines.append(f"Peer: not measured ({peer.get('skipped') or peer.get('error')}).")
    sizes = result.get("data", {}).get("sizes")
    if sizes:
        tr, va, te = sizes["train"], sizes["val"], sizes["test"]
        lines += [
            "",
            f"Data: CLINC150; train {tr['queries'] - tr['oos']} examples in {tr['labels']} routes "
            f"(oos excluded); val {va['queries']} queries ({va['oos']} oos) for calibration; "
            f"test {te['queries']} queries ({te['oos']} oos) for every figure below.",
        ]
    return lines


def render(result: Result) -> str:
    """The generated Markdown section (without markers)."""
    quick = " (QUICK: subset, not comparable)" if result.get("quick") else ""
    lines = [f"## Latest run{quick}", "", *_intro(result), "", "### Quality (test split)", ""]
    lines += _table(
        ["router", "settings", "in-scope accuracy", "fallback recall", "fallback precision", "overall accuracy"],
        quality_rows(result),
    )
    lines += ["", "### Speed", ""]
    lines += _table(["measure", "result"], speed_rows(result))
    met = {True: "yes", False: "NO", None: "n/a"}
    backends = backend_section(result)
    if backends:
        lines += ["", *backends]
    lines += ["", "### Targets (issue 5)", ""]
    lines += _table(
        ["target", "goal", "measured", "met"],
        [[t["name"], t["target"], t["shown"], met[t["met"]]] for t in result.get("targets", [])],
    )
    if result.get("backend_targets"):
        lines += ["", "### Targets (issue 15: embedding backends, measured side by side above)", ""]
        lines += _table(
            ["target", "goal", "measured", "met"],
            [[t["name"], t["target"], t["shown"], met[t["met"]]] for t in result["backend_targets"]],
        )
    notes = result.get("notes", [])
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def write_section(markdown_path: Path, section: str) -> None:
    """Replace the text between the markers, creating the file with a header when absent."""
    block = f"{START}\n{section}{END}\n"
    if not markdown_path.exists():
        markdown_path.write_text(HEADER + block, encoding="utf-8")
        return
    text = markdown_path.read_text(encoding="utf-8")
    start, end = text.find(START), text.find(END)
    if start == -1 or end == -1 or end < start:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        after = text[end + len(END) :].lstrip("\n")
        text = text[:start] + block + (("\n" + after) if after else "")
    markdown_path.write_text(text, encoding="utf-8")


def write_named_section(markdown_path: Path, name: str, section: str) -> None:
    """Replace the text between `<!-- name:start -->` and `<!-- name:end -->` (appended when absent)."""
    start_mark, end_mark = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start_mark}\n{section}{end_mark}\n"
    text = markdown_path.read_text(encoding="utf-8") if markdown_path.exists() else HEADER
    start, end = text.find(start_mark), text.find(end_mark)
    if start == -1 or end == -1 or end < start:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        text = text[:start] + block + text[end + len(end_mark) :].lstrip("\n")
    markdown_path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("result", type=Path, help="a JSON document written by python -m bench")
    parser.add_argument("--markdown", type=Path, help="also rewrite this file's generated section")
    args = parser.parse_args(argv)
    result = json.loads(args.result.read_text(encoding="utf-8"))
    section = render(result)
    print(section)
    if args.markdown:
        write_section(args.markdown, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
