"""Settings of the indexer process: the shared ones, and the decision model that `eval --llm` asks."""

from __future__ import annotations

from router_core.settings import RouterSettings
from router_llm.settings import DeciderSettings, LLMSettings


class IndexerSettings(RouterSettings):
    """What `python -m indexer` reads from its environment (prefix ROUTER_, nested with __)."""

    llm: LLMSettings = LLMSettings()
    decider: DeciderSettings = DeciderSettings()
