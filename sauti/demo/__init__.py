"""`sauti demo`: three synthetic CSO nodes and a hub answering DP questions on localhost."""
