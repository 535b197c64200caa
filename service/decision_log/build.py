"""Open the decision log the settings describe (its database only when something is recorded)."""

from __future__ import annotations

from router_core.decision_log import database_url
from router_core.decision_log.store import DecisionStore
from service.decision_log.log import DecisionLog
from service.decision_log.metrics import DecisionLogMetrics
from service.metrics import Metrics
from service.settings import ServiceSettings


def open_decision_log(settings: ServiceSettings, metrics: Metrics) -> DecisionLog:
    """The service's decision log; LogUnavailable when its database cannot be opened."""
    config = settings.decision_log
    store = None
    if config.enabled:
        store = DecisionStore.open(database_url(config, settings.index.data_dir), retention_s=config.retention_s)
    return DecisionLog(
        config, store, DecisionLogMetrics(metrics.registry), max_query_chars=settings.limits.max_query_chars
    )
