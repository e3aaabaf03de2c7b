"""Shared harmonisation modules: shipped definitions, signed publication and node coverage."""
