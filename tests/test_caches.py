"""The routing stage's bounded cache: values through it come back in order, computed once."""

from __future__ import annotations

from service.routing.caches import LRU


def test_through_computes_only_the_missing_keys_in_one_call_and_keeps_what_it_is_told() -> None:
    lru: LRU[str] = LRU(10)
    lru.put("b", "B (cached)")
    calls: list[list[int]] = []

    def compute(positions: list[int]) -> list[str]:
        calls.append(positions)
        return [f"{keys[i].upper()} (computed)" for i in positions]

    keys = ["a", "b", "c", "d"]
    values, missing = lru.through(keys, compute, keep=lambda i: keys[i] != "d")
    assert values == ["A (computed)", "B (cached)", "C (computed)", "D (computed)"]
    assert missing == [0, 2, 3]
    assert calls == [[0, 2, 3]]
    again, missing = lru.through(keys, compute)
    assert again == ["A (computed)", "B (cached)", "C (computed)", "D (computed)"]
    assert missing == [3]  # "d" was not kept
    assert calls[-1] == [3]
    assert lru.through([], compute) == ([], [])
    assert len(calls) == 2


def test_through_a_full_cache_drops_the_least_recently_used() -> None:
    lru: LRU[int] = LRU(2)
    values, _ = lru.through(["x", "y", "z"], lambda positions: [i * 10 for i in positions])
    assert values == [0, 10, 20]
    assert len(lru) == 2
    assert lru.get("x") is None and lru.get("z") == 20
