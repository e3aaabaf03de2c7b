"""Analyst queries at the hub: check, plan, fan out, combine, store."""
