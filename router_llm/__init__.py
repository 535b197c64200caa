"""Talking to OpenAI-compatible endpoints: which endpoint and key, shared clients, retries with
backoff, failures named in words safe to show, keys masked everywhere.

Shared by the service (agents, the LLM decision step) and the indexer (evaluation with an LLM);
the only code besides them that imports the `openai` client. Imports nothing of either.
"""
