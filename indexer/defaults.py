"""Defaults and names the commands' options show in --help, kept apart from the code that uses
them so that building the parser imports nothing heavy."""

DEFAULT_OOS_SHARE = 0.2  # calibrate: out-of-scope queries' share of the objective
DEFAULT_MIN_OFF_TOPIC = 0.80  # the benchmarks of the rule without follow-ups (calibrate: as many as alone)
DEFAULT_DUPLICATE_SIMILARITY = 0.95  # hygiene: cosine at or above which two examples are near-duplicates
DEFAULT_MIN_EXAMPLES = 20  # hygiene: routes with fewer examples are flagged
REPLACE_FLAG = "--replace-configured-index"  # reindex: publish another routes directory into the service's index
SWITCH_FLAG = "--switch-model"  # reindex: re-embed an index built with another model, with the configured one
