"""The re-index job and the route tooling CLI (`python -m indexer`)."""
