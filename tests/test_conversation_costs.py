"""Conversations are charged what they cost: in the rate limit by the texts the router embeds
for them (not one query per conversation), in the micro-batch planner as those texts (a pass
never embeds more than its character budget), and the work of a client that has gone stops."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from devkit.serving import serve, settings_for
from router_core import Embedder, load_routes, run_reindex
from router_core.embedding import Vectors
from router_core.store import EdgeStore
from service.app import create_app
from service.security import AuthSettings
from service.services import Services

WORDS = ["invoice", "rust", "borrow", "percentage", "quota", "discount", "deploy", "pipeline", "refund", "latency"]
PASS_CHARS = 16_000  # ROUTER_LIMITS__MAX_MICRO_BATCH_CHARS, the default


@dataclass
class RecordingEmbedder:
    """The session's model, recording the characters of every encode call the service makes
    (each is one forward pass's new texts) and when it ended; `pause_s` makes each call slower."""

    inner: Embedder
    pause_s: float = 0.0
    calls: list[tuple[float, int]] = field(default_factory=list)  # (ended at, characters)

    def __post_init__(self) -> None:
        self.model_id, self.dimension = self.inner.model_id, self.inner.dimension
        self.source, self.backend = self.inner.source, self.inner.backend

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        vectors = self.inner.encode_queries(texts, batch_size=batch_size, progress=progress)
        time.sleep(self.pause_s)
        self.calls.append((time.monotonic(), sum(len(t) for t in texts)))
        return vectors

    def encode_documents(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        return self.inner.encode_documents(texts, batch_size=batch_size, progress=progress)


def conversation(seed: str, rng: random.Random, messages: int = 20, chars: int = 800) -> list[dict[str, str]]:
    """`messages` alternating user and assistant messages of `chars` characters never sent before."""
    out = []
    for i in range(messages):
        words = [f"{seed} turn {i}:"]
        while sum(len(w) + 1 for w in words) < chars:
            words.append(rng.choice(WORDS))
        out.append({"role": "user" if i % 2 == 0 else "assistant", "content": " ".join(words)[:chars]})
    return out


@pytest.fixture
def serve_recorded(
    tmp_path: Path, routes_dir: Path, embedder: Embedder
) -> Iterator[Callable[..., tuple[str, RecordingEmbedder]]]:
    """Serve the shipped routes with a recording model and the given settings."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    stack: list[object] = []

    def start(pause_s: float = 0.0, **overrides: object) -> tuple[str, RecordingEmbedder]:
        recording = RecordingEmbedder(embedder, pause_s)
        cm = serve(create_app(services=Services.build(settings_for(routes_dir, data, **overrides), embedder=recording)))
        stack.append(cm)
        return cm.__enter__(), recording

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)  # type: ignore[attr-defined]


def test_the_rate_limit_charges_a_conversation_its_texts(
    serve_recorded: Callable[..., tuple[str, RecordingEmbedder]],
) -> None:
    """With 60 queries a minute, one new 20-message conversation costs the 11 texts it makes the
    router embed (its window's messages; it used to cost one), so the caller then waits; the
    same conversation sent again, its texts cached, costs one query."""
    key = "conversation-cost-key"
    url, _ = serve_recorded(auth=AuthSettings(api_keys=[SecretStr(key)], rate_per_minute=60))
    rng = random.Random(1)
    messages = conversation(f"rate-{random.randrange(10**9)}", rng, chars=200)
    with httpx.Client(base_url=url, timeout=60, headers={"authorization": f"Bearer {key}"}) as c:
        assert c.post("/v1/classify", json={"messages": messages}).status_code == 200
        for _ in range(20):  # cached now: one query each
            assert c.post("/v1/classify", json={"messages": messages}).status_code == 200
        fresh = [conversation(f"rate-b{i}-{random.randrange(10**9)}", rng, chars=200) for i in range(4)]
        batch = {"conversations": [{"messages": m} for m in fresh]}
        assert c.post("/v1/classify/batch", json=batch).status_code == 200
        limited = c.post("/v1/classify", json={"query": "What is 15% of 200?"})
    assert limited.status_code == 429, "five new conversations and 20 repeats fit in 60 queries: charged too little"
    assert int(limited.headers["retry-after"]) >= 5


@pytest.mark.slow
def test_no_pass_embeds_more_than_its_budget_for_conversations(
    serve_recorded: Callable[..., tuple[str, RecordingEmbedder]],
) -> None:
    """A batch of 6 conversations of 20 messages of 800 characters (to embed for each: the 6
    user messages of its window and the ends of the 5 answers between them, about 5,800
    characters): every forward pass embeds at most 16,000 characters (a conversation used to
    ride through one pass whole), and the decisions are those of each conversation alone."""
    url, recording = serve_recorded()
    rng = random.Random(2)
    tag = f"pass-{random.randrange(10**9)}"
    batch = [{"messages": conversation(f"{tag}-{i}", rng)} for i in range(6)]
    with httpx.Client(base_url=url, timeout=300) as c:
        r = c.post("/v1/classify/batch", json={"conversations": batch})
        assert r.status_code == 200, r.text
        embedded = [chars for _, chars in recording.calls]
        alone = [c.post("/v1/classify", json=one).json() for one in batch]
    assert sum(embedded) > 6 * 5_600 and len(embedded) >= 3
    assert max(embedded) <= PASS_CHARS, embedded
    got = [(d["route"], d["reason"], d["score"]) for d in r.json()["results"]]
    assert got == [(d["route"], d["reason"], d["score"]) for d in alone]


@pytest.mark.slow
def test_the_work_of_a_client_that_has_gone_stops(serve_recorded: Callable[..., tuple[str, RecordingEmbedder]]) -> None:
    """A client sends 32 long conversations (~50 passes) and hangs up after 1.5 s: the passes
    stop (only the one running finishes), and the request is counted as 499, not 500."""
    url, recording = serve_recorded(pause_s=0.1)
    rng = random.Random(3)
    tag = f"gone-{random.randrange(10**9)}"
    batch = [{"messages": conversation(f"{tag}-{i}", rng)} for i in range(32)]
    outcome: list[str] = []

    def send() -> None:
        try:
            httpx.post(f"{url}/v1/classify/batch", json={"conversations": batch}, timeout=1.5)
            outcome.append("answered")
        except httpx.TimeoutException:
            outcome.append("gave up")  # the connection is closed: the client has gone

    sender = threading.Thread(target=send)
    sender.start()
    sender.join()
    assert outcome == ["gave up"]
    left_at = time.monotonic()
    time.sleep(8.0)
    # The pass running when the client left may finish (4 s is ample for one); none may start after.
    late = [at - left_at for at, _ in recording.calls if at > left_at + 4.0]
    assert not late, f"{len(late)} passes ended 4-8 s after the client left"
    assert sum(chars for _, chars in recording.calls) < 32 * 20_000 / 2
    metrics = httpx.get(f"{url}/metrics").text
    assert (
        'router_http_requests_total{endpoint="/v1/classify/batch",method="POST",route_set="default",status="499"} 1.0'
        in metrics
    )


def test_a_conversation_is_embedded_in_one_pass_and_its_next_turn_embeds_only_what_is_new(
    serve_recorded: Callable[..., tuple[str, RecordingEmbedder]],
) -> None:
    """A 19-message conversation never seen: one encode call holding the 11 messages of its
    window, each once (the contexts are mixed from their vectors, never embedded); its next
    turn (an answer and a user message more): one call holding those two texts."""
    url, recording = serve_recorded()
    rng = random.Random(3)
    messages = conversation(f"once-{random.randrange(10**9)}", rng, messages=19, chars=120)
    following = conversation(f"next-{random.randrange(10**9)}", rng, messages=2, chars=120)
    following[0]["role"], following[1]["role"] = "assistant", "user"
    with httpx.Client(base_url=url, timeout=60) as c:
        before = len(recording.calls)
        assert c.post("/v1/classify", json={"messages": messages}).status_code == 200
        cold = recording.calls[before:]
        before = len(recording.calls)
        assert c.post("/v1/classify", json={"messages": [*messages, *following]}).status_code == 200
        warm = recording.calls[before:]
    window = messages[8:]  # the last 6 user messages and the 5 answers between them
    assert [chars for _, chars in cold] == [sum(len(m["content"]) for m in window)]
    assert [chars for _, chars in warm] == [sum(len(m["content"]) for m in following)]
