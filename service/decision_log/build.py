"""Open the decision log the settings describe (its database only when something is recorded)."""

from __future__ import annotations

import logging

from router_core.decision_log import database_url
from router_core.decision_log.store import DecisionStore, LogUnavailable
from service.decision_log.log import DecisionLog
from service.decision_log.metrics import DecisionLogMetrics
from service.metrics import Metrics
from service.settings import ServiceSettings

log = logging.getLogger("router.decision_log")


def open_decision_log(settings: ServiceSettings, metrics: Metrics) -> DecisionLog:
    """The service's decision log. A database the operator named (a URL or a path) that cannot
    be opened is LogUnavailable: the service does not start. The default file under the data
    directory is another matter: a replica may serve a read-only data directory, and then it
    serves without recording, saying so."""
    config = settings.decision_log
    store = None
    if config.enabled:
        url = database_url(config, settings.index.data_dir)
        try:
            store = DecisionStore.open(url, retention_s=config.retention_s)
        except LogUnavailable as exc:
            if config.url is not None or config.path is not None:
                raise
            log.warning(
                "%s; serving without recording decisions (set ROUTER_DECISION_LOG__PATH or __URL to a "
                "writable database, or ROUTER_DECISION_LOG__RECORD=none to silence this)",
                exc,
            )
    return DecisionLog(
        config, store, DecisionLogMetrics(metrics.registry), max_query_chars=settings.limits.max_query_chars
    )
