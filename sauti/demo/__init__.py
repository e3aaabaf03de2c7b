"""`sauti demo`: three synthetic CSO nodes and a hub answering DP questions on localhost."""

# Here, not in data.py, so `sauti demo --help` shows it without numpy and polars.
DEFAULT_ROWS = 40_000
