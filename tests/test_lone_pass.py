"""A pass of one caller's work on an idle machine (service.routing.stage): its small encode may
be split across the cores and its replies' chances computed beside its search; the decisions
are those of a pass that does neither."""

from __future__ import annotations

import asyncio
from pathlib import Path

from router_core import Embedder, RouteRequest, Turn, load_routes, run_reindex
from router_core.store import EdgeStore
from router_llm.clients import ClientRegistry
from router_llm.decider import Decider
from router_llm.settings import DeciderSettings, LLMSettings
from service.live_index import IndexFollower
from service.metrics import Metrics
from service.routing.idle_cores import IdleCores
from service.routing.stage import RoutingStage
from tests.test_replies import CLOSER, CODING_CHAT, NEW_QUESTION, write_replies


def idle_cores(tmp_path: Path, running: int) -> IdleCores:
    path = tmp_path / f"loadavg-{running}"
    path.write_text(f"0.10 0.10 0.10 {running}/200 4242\n")
    return IdleCores(str(path), cores=2)


def route(stage: RoutingStage, batches: list[list[RouteRequest]]) -> tuple[list[tuple[str, str, float]], bool]:
    """Each batch routed in turn (one pass each), and whether the stage computed replies'
    chances beside a search."""

    async def run() -> tuple[list[tuple[str, str, float]], bool]:
        await stage.start()
        try:
            routed = [r for batch in batches for r in await stage.route(batch)]
            beside = stage._side is not None
        finally:
            await stage.stop()
        return [(r.decision.route, r.decision.reason, round(r.decision.score, 6)) for r in routed], beside

    return asyncio.run(run())


def test_a_lone_pass_on_an_idle_machine_decides_as_any_other(
    routes_dir: Path, tmp_path: Path, embedder: Embedder
) -> None:
    write_replies(routes_dir, [(CLOSER, 9, 1), ("Do you want the steps as well?", 0, 6)])
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    chat = [*CODING_CHAT, {"role": "user", "content": NEW_QUESTION}]
    turns = tuple(Turn(i, m["role"], m["content"]) for i, m in enumerate(chat))  # type: ignore[arg-type]
    follow_up = (*turns, Turn(5, "assistant", "Do you want the steps as well?"), Turn(6, "user", "yes please"))
    found: dict[int, tuple[list[tuple[str, str, float]], bool]] = {}
    for running in (1, 9):  # a core idle, none
        follower = IndexFollower(EdgeStore(data), embedder)
        follower.load_live()
        decider = Decider(DeciderSettings(), LLMSettings(), ClientRegistry(LLMSettings()))
        stage = RoutingStage(
            follower, Metrics(), decider, batch_size=64, max_micro_batch=64, idle=idle_cores(tmp_path, running)
        )
        try:
            found[running] = route(stage, [[RouteRequest(turns)], [RouteRequest(follow_up)]])
        finally:
            follower.close()
    (spare, beside), (busy, not_beside) = found[1], found[9]
    assert spare == busy and len(spare) == 2
    assert spare[0][0] == "maths"  # the reply after the coding chat tells a new topic is likely
    assert beside and not not_beside  # only the idle machine computed the chances beside the search
