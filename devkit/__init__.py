"""Development tools shared by the tests and the benchmarks, so neither imports the other.

Serving the real app under uvicorn in a thread (`serving`), the loopback OpenAI-compatible
stand-in for a remote LLM (`fake_llm`), and helpers that write routes directories
(`routes_dirs`). Imports router_core and service; never tests or bench. Not installed with the
product: run from the repository root.
"""
