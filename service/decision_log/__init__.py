"""Recording routed requests into the decision log, and taking feedback on them.

`DecisionLog` is the typed service handlers receive (`service.services`); recording goes
through one background writer (`writer.LogWriter`) and never waits for the database.
"""

from service.decision_log.log import DecisionLog, FeedbackGiven, RequestRecorder
from service.decision_log.metrics import DecisionLogMetrics

__all__ = ["DecisionLog", "DecisionLogMetrics", "FeedbackGiven", "RequestRecorder"]
