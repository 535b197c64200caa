"""The benchmark of the router on CLINC150: quality against semantic-router 1.1, and speed.

Run it with `python -m bench` (see `python -m bench --help`).
"""
