"""Latency the router adds before the first streamed token.

Time to first token (TTFT) of streamed chat completions, measured with the official `openai`
client, on two paths in the same process:

- direct: straight to the stand-in LLM (tests/fake_llm.py, a real HTTP server on loopback);
- router: through the service's /v1/chat/completions (model "router"), which embeds and
  classifies the query, picks the route's agent and opens the upstream stream to the same
  stand-in server.

The stand-in answers at once, so the difference is the router's own overhead. Requests are
sequential and the two paths alternate, so load from elsewhere hits both alike. Also reported:
the first `delta` event of /v1/answer streaming.

    python -m bench.first_token [-n 50] [--warmup 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
import openai

from bench.stats import percentile
from devkit.fake_llm import FakeLLM, Reply
from devkit.routes_dirs import FAKE_KEY, FAKE_KEY_ENV, copy_shipped, point_agents_at
from devkit.serving import serve
from router_core import LLMAgent, load_embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from router_llm.settings import LLMSettings
from service.app import create_app
from service.services import Services
from service.settings import ServiceSettings


def first_content(chunks: Iterable[openai.types.chat.ChatCompletionChunk]) -> None:
    """Consume a stream up to its first non-empty content delta."""
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            return
    raise RuntimeError("the stream ended without content")


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=50, help="measured requests per path")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured requests per path")
    args = parser.parse_args()
    for noisy in ("httpx", "httpx2", "openai", "router"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ[FAKE_KEY_ENV] = FAKE_KEY
    with FakeLLM() as fake, tempfile.TemporaryDirectory() as tmp:
        fake.always("gpt-4o-mini", Reply(chunks=8))
        routes = copy_shipped(Path(tmp) / "routes")
        point_agents_at(routes, fake.url)
        table = load_routes(routes)
        embedder = load_embedder()
        run_reindex(table, EdgeStore(Path(tmp) / "data"), embedder)
        base = ServiceSettings(_env_file=None)  # type: ignore[call-arg]
        settings = base.model_copy(
            update={
                "routes_dir": routes,
                "index": base.index.model_copy(update={"data_dir": Path(tmp) / "data"}),
                "llm": LLMSettings(api_key_env=FAKE_KEY_ENV),
            }
        )
        runtime = Services.build(settings, embedder=embedder)
        queries = [(r.examples[i % len(r.examples)], r.agent) for i in range(10) for r in table.routes]
        with serve(create_app(services=runtime)) as url:
            direct = openai.OpenAI(base_url=fake.url, api_key=FAKE_KEY, max_retries=0)
            router = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            http = httpx.Client(base_url=url, timeout=30)

            def via_direct(query: str, agent: LLMAgent) -> None:
                messages = [
                    {"role": "system", "content": agent.system_prompt},
                    {"role": "user", "content": query},
                ]
                first_content(
                    direct.chat.completions.create(
                        model=agent.model,
                        messages=messages,
                        stream=True,  # type: ignore[arg-type]
                    )
                )

            def via_router(query: str) -> None:
                first_content(
                    router.chat.completions.create(
                        model="router", messages=[{"role": "user", "content": query}], stream=True
                    )
                )

            def via_classify(query: str) -> None:
                http.post("/v1/classify", json={"query": query}).raise_for_status()

            def via_answer(query: str) -> None:
                with http.stream("POST", "/v1/answer", json={"query": query, "stream": True}) as r:
                    for line in r.iter_lines():
                        if line.startswith("event: delta"):
                            return
                raise RuntimeError("no delta event")

            samples: dict[str, list[float]] = {"direct": [], "router": [], "answer": [], "classify": []}
            for i in range(args.warmup + args.n):
                query, agent = queries[i % len(queries)]
                assert isinstance(agent, LLMAgent)
                runs = [
                    ("direct", lambda q=query, a=agent: via_direct(q, a)),
                    ("router", lambda q=query: via_router(q)),
                    ("answer", lambda q=query: via_answer(q)),
                    ("classify", lambda q=query: via_classify(q)),
                ]
                shift = i % len(runs)
                for name, fn in runs[shift:] + runs[:shift]:
                    ms = timed(fn)
                    if i >= args.warmup:
                        samples[name].append(ms)
            http.close()

    print(f"time to first token, ms (n={args.n} sequential per path, stand-in LLM on loopback)")
    print(f"{'path':<36}{'p50':>8}{'p95':>8}{'mean':>8}")
    labels = {
        "direct": "direct to the stand-in LLM",
        "router": "via router /v1/chat/completions",
        "answer": "via router /v1/answer (SSE)",
        "classify": "router /v1/classify (full response)",
    }
    for name, values in samples.items():
        print(
            f"{labels[name]:<36}{percentile(values, 50):>8.1f}{percentile(values, 95):>8.1f}"
            f"{statistics.fmean(values):>8.1f}"
        )
    d50, r50 = percentile(samples["direct"], 50), percentile(samples["router"], 50)
    d95, r95 = percentile(samples["direct"], 95), percentile(samples["router"], 95)
    print(
        f"added by the router: p50 +{r50 - d50:.1f} ms (x{r50 / d50:.1f}), p95 +{r95 - d95:.1f} ms (x{r95 / d95:.1f})"
    )


if __name__ == "__main__":
    main()
