"""Review of logged decisions: what adding reviewed queries as examples would do (the guard
against overfitting), the logged queries near them, and labelled exports. Shared by the
service's Review tab and `python -m indexer review`."""

from router_core.review.guard import Baseline, Candidate, Figures, GuardReport, Moved, baseline, guard
from router_core.review.nearby import Nearby, nearby

__all__ = [
    "Baseline",
    "Candidate",
    "Figures",
    "GuardReport",
    "Moved",
    "Nearby",
    "baseline",
    "guard",
    "nearby",
]
