"""Versioned, immutable dataset store: import, validate, bound contributions, load."""
