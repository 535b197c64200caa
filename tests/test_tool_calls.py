"""Agent traffic: OpenAI tool calling through the router, driven by the official `openai` client
against the loopback fake LLM, and the whole chat message schema on every routing endpoint."""

from __future__ import annotations

import ast
import json
import operator
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from bench.chat_roles import REWRITES, requests_of
from devkit.fake_llm import FakeLLM
from devkit.fake_tool_calls import UsesTools
from devkit.serving import SHIPPED_EVALS
from router_core import Embedder
from router_core.labelled_conversations import parse_conversations
from service.agents.conversation import DEFAULT_POLICY, RolePolicy, build_conversation
from service.settings import LimitSettings
from tests.llm_fixtures import shipped_router

SHIPPED_CONVERSATIONS = SHIPPED_EVALS / "shipped-conversations.jsonl"
MATHS_QUESTION = "What is 20% of 350?"  # the maths route's first example
CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    },
}
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def calculator(expression: str) -> str:
    """The client's tool: + - * / over numbers."""

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](value(node.left), value(node.right)))
        raise ValueError(expression)

    return f"{value(ast.parse(expression, mode='eval').body):g}"


@pytest.fixture(scope="module")
def router_url(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Embedder,
    fake_llm_server: FakeLLM,
    llm_env: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A service over the shipped routes, their LLM agents pointed at the fake LLM."""
    with shipped_router(tmp_path_factory.mktemp("tools"), embedder, fake_llm_server) as url:
        yield url


@pytest.fixture(scope="module")
def sdk(router_url: str) -> Iterator[openai.OpenAI]:
    """The official client pointed at the router."""
    with openai.OpenAI(base_url=f"{router_url}/v1", api_key="not-checked", max_retries=0) as c:
        yield c


def complete(sdk: openai.OpenAI, messages: list[dict[str, Any]], *, stream: bool) -> tuple[httpx.Headers, Any]:
    """One completion offering the calculator: the response headers and the (assembled) completion."""
    params: Any = {"model": "router", "messages": messages, "tools": [CALCULATOR], "tool_choice": "auto"}
    if not stream:
        raw = sdk.chat.completions.with_raw_response.create(**params, parallel_tool_calls=False)
        return raw.headers, raw.parse()
    state = ChatCompletionStreamState()  # the SDK's own accumulator of streamed chunks
    with sdk.chat.completions.with_streaming_response.create(**params, parallel_tool_calls=False, stream=True) as r:
        for chunk in r.parse():
            state.handle_chunk(chunk)
        return r.headers, state.get_final_completion()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_tool_round_trip_stays_with_its_route(sdk: openai.OpenAI, fake_llm: FakeLLM, stream: bool) -> None:
    """The client offers a tool, the agent calls it (tool_calls, content null), the client sends
    the call and its result back (content null + tool_calls, then a tool message) and the agent
    answers from it: both requests reach the same route and agent, the messages reach the agent
    unchanged and tools, tool_choice and parallel_tool_calls are forwarded."""
    fake_llm.always("gpt-4o-mini", UsesTools(arguments='{"expression": "0.20 * 350"}', chunks=4))
    messages: list[dict[str, Any]] = [{"role": "user", "content": MATHS_QUESTION}]
    headers, first = complete(sdk, messages, stream=stream)
    assert headers["x-router-route"] == "maths" and first.model == "router/maths/gpt-4o-mini"
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    [call] = choice.message.tool_calls
    assert call.function.name == "calculator" and json.loads(call.function.arguments) == {"expression": "0.20 * 350"}

    result = calculator(json.loads(call.function.arguments)["expression"])
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [call.model_dump(include={"id", "type", "function"})],
    }
    messages += [assistant, {"role": "tool", "tool_call_id": call.id, "content": result}]
    headers_2, final = complete(sdk, messages, stream=stream)
    assert (headers_2["x-router-route"], headers_2["x-router-agent"]) == (
        headers["x-router-route"],
        headers["x-router-agent"],
    )
    assert final.model == first.model
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "[gpt-4o-mini] 70" and not final.choices[0].message.tool_calls

    asked_first, asked_again = fake_llm.calls("gpt-4o-mini")
    assert asked_again.messages[1:] == messages  # after the agent's system prompt, exactly as sent
    for asked in (asked_first, asked_again):
        assert asked.body["tools"] == [CALCULATOR]
        assert asked.body["tool_choice"] == "auto" and asked.body["parallel_tool_calls"] is False


def test_streamed_tool_calls_arrive_as_openai_deltas(router_url: str, fake_llm: FakeLLM) -> None:
    """On the wire, a streamed tool call is `delta.tool_calls` pieces (index, id, type and name
    first, then the arguments in pieces) and a final `finish_reason: "tool_calls"`."""
    fake_llm.always("gpt-4o-mini", UsesTools(arguments='{"expression": "1+1"}', chunks=3, calls=2))
    body = {"model": "router", "stream": True, "messages": [{"role": "user", "content": MATHS_QUESTION}]}
    r = httpx.post(f"{router_url}/v1/chat/completions", json={**body, "tools": [CALCULATOR]}, timeout=30)
    assert r.status_code == 200, r.text
    chunks = [json.loads(line[6:]) for line in r.text.split("\n") if line.startswith("data: {")]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    pieces = [p for d in deltas for p in d.get("tool_calls", [])]
    heads = [p for p in pieces if "id" in p]
    assert [(p["index"], p["type"], p["function"]["name"]) for p in heads] == [(0, "function", "calculator")] * 1 + [
        (1, "function", "calculator")
    ]
    for index in (0, 1):
        arguments = "".join(p["function"].get("arguments", "") for p in pieces if p["index"] == index)
        assert arguments == '{"expression": "1+1"}'
    assert len(pieces) > 2 * 2  # the arguments came in several pieces per call
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert r.text.endswith("data: [DONE]\n\n")


def test_a_canned_route_refuses_tools_naming_the_field(router_url: str, fake_llm: FakeLLM) -> None:
    """Tools on a request the canned default agent answers are a 400 naming `tools`: a canned
    reply cannot call a tool; no LLM is asked."""
    body = {"model": "router", "messages": [{"role": "user", "content": "What's a good recipe for banana bread?"}]}
    r = httpx.post(f"{router_url}/v1/chat/completions", json={**body, "tools": [CALCULATOR]}, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "tools" and "canned" in r.json()["detail"]
    assert fake_llm.calls() == []


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"tools": [{"function": {"name": "f"}}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"parallel_tool_calls": True}, "parallel_tool_calls"),
        ({"functions": [{"name": "f"}]}, "functions"),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "1"}]},
            "messages[1].tool_call_id",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}]},
            "messages[1].content",
        ),
        ({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages[0].content[0].text"),
        ({"messages": [{"role": "function", "content": "1"}, {"role": "user", "content": "hi"}]}, "messages[0].name"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ],
)
def test_malformed_tool_traffic_is_a_400_naming_the_field(router_url: str, extra: dict[str, Any], field: str) -> None:
    """What the chat schema does not allow is a 400 problem naming the field."""
    body = {"model": "router", "messages": [{"role": "user", "content": MATHS_QUESTION}], **extra}
    r = httpx.post(f"{router_url}/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == field


TOOL_CHAT = [
    {"role": "system", "content": "You are a helpful assistant. Use the tools you are given."},
    {"role": "developer", "content": "Answer in one sentence."},
    {"role": "user", "content": [{"type": "text", "text": "What is 20% of 350?"}]},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "calculator", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "70"},
    {"role": "function", "name": "calculator", "content": None},
    {"role": "assistant", "content": [{"type": "text", "text": "20% of 350 is 70."}], "name": "maths-bot"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "and what is 15% of that?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        ],
    },
]


def skipped_images(url: str) -> float:
    """`router_skipped_parts_total{type="image_url"}` as /metrics reports it."""
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith('router_skipped_parts_total{type="image_url"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_classify_reads_the_whole_chat_schema(router_url: str) -> None:
    """/v1/classify and /v1/classify/batch take system, developer, tool and function messages,
    null content beside tool_calls and lists of parts: 200 with the user turn's route; image and
    audio parts are counted in `skipped_parts` and in /metrics, never an error."""
    before = skipped_images(router_url)
    r = httpx.post(f"{router_url}/v1/classify", json={"messages": TOOL_CHAT}, timeout=30)
    assert r.status_code == 200, r.text
    decided = r.json()
    assert decided["route"] == "maths"
    assert decided["skipped_parts"] == {"image_url": 1, "input_audio": 1}
    assert {t["index"] for t in decided["turns"]} <= {2, 6, 7}  # user and assistant text: never system or tool
    batch = httpx.post(
        f"{router_url}/v1/classify/batch", json={"conversations": [{"messages": TOOL_CHAT}] * 2}, timeout=30
    )
    assert batch.status_code == 200, batch.text
    assert [d["route"] for d in batch.json()["results"]] == ["maths", "maths"]
    assert skipped_images(router_url) == before + 3


def test_an_image_alone_routes_on_the_user_text_before_it(router_url: str) -> None:
    """A last user message of only an image is passed on but not routed: the user message with
    text before it is (a chat of images alone is a 400 saying the router reads text)."""
    image = {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}}
    chat = [{"role": "user", "content": MATHS_QUESTION}, {"role": "user", "content": [image]}]
    r = httpx.post(f"{router_url}/v1/classify", json={"messages": chat}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["route"] == "maths" and r.json()["skipped_parts"] == {"image_url": 1}
    r = httpx.post(f"{router_url}/v1/classify", json={"messages": chat[1:]}, timeout=30)
    assert r.status_code == 400 and "image, audio and file parts" in r.json()["detail"]


# -- what each role contributes (service.agents.conversation, no HTTP) --------------------------
LIMITS = LimitSettings()


def roles_read(messages: list[dict[str, Any]], policy: RolePolicy = DEFAULT_POLICY) -> list[tuple[int, str, str]]:
    """(position, role, text) of the messages the router reads."""
    return [(t.index, t.role, t.text) for t in build_conversation(messages, LIMITS, policy).turns]


def test_the_router_reads_user_and_assistant_text_only() -> None:
    """System and developer prompts, tool calls and tool results reach the agent but are not
    read; the routed message is the last user message, and what follows it is not read."""
    chat = build_conversation(TOOL_CHAT, LIMITS)
    assert roles_read(TOOL_CHAT) == [
        (2, "user", "What is 20% of 350?"),
        (6, "assistant", "20% of 350 is 70."),
        (7, "user", "and what is 15% of that?"),
    ]
    assert [m.payload for m in chat.messages] == TOOL_CHAT  # passed on as sent
    assert chat.skipped_parts == {"image_url": 1, "input_audio": 1}
    trailing = [*TOOL_CHAT, TOOL_CHAT[3], {"role": "tool", "tool_call_id": "call_1", "content": "10.5"}]
    assert roles_read(trailing) == roles_read(TOOL_CHAT)  # a round trip routes like its user message


def test_tool_results_when_read_are_cut_and_bounded() -> None:
    """Read as assistant evidence (the policy the benchmark compares), each tool result is cut to
    its first `tool_result_chars` characters and only the last `tool_results_per_exchange` of an
    exchange count, so huge or many results cost a bounded number of short texts."""
    policy = RolePolicy(tool_results=True, tool_result_chars=50, tool_results_per_exchange=2)
    results = [{"role": "tool", "tool_call_id": f"c{i}", "content": f"result {i} " + "x" * 20_000} for i in range(4)]
    chat = [{"role": "user", "content": MATHS_QUESTION}, *results, {"role": "user", "content": "and of 400?"}]
    read = roles_read(chat, policy)
    assert [(i, role) for i, role, _ in read] == [(0, "user"), (3, "assistant"), (4, "assistant"), (5, "user")]
    assert [len(text) for _, _, text in read[1:3]] == [50, 50] and read[1][2].startswith("result 2")
    system_read = roles_read(TOOL_CHAT, RolePolicy(system_prompts=True))
    assert [(i, role) for i, role, _ in system_read[:2]] == [(0, "assistant"), (1, "assistant")]


def test_the_role_benchmark_rewrites_keep_each_label_on_its_user_message() -> None:
    """bench.chat_roles: every rewrite keeps each labelled turn on its own user message, and the
    default policy reads a chat with tool calls and results inserted as it reads the plain chat."""
    chats = parse_conversations(SHIPPED_CONVERSATIONS.read_text(encoding="utf-8").split("\n"), where="shipped")
    names = ["coding", "maths"]
    plain, labels = requests_of(chats, REWRITES["plain"], names, DEFAULT_POLICY)
    for name, rewrite in REWRITES.items():
        requests, same = requests_of(chats, rewrite, names, DEFAULT_POLICY)
        assert same == labels
        assert [r.text for r in requests] == [r.text for r in plain], name
        if name in ("tools echo", "tools noise") or name.startswith("system"):
            assert [[(t.role, t.text) for t in r.turns] for r in requests] == [
                [(t.role, t.text) for t in r.turns] for r in plain
            ], name
