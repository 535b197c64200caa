"""The semantic router's HTTP service (`python -m service`)."""
