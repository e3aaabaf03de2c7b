"""Transport-agnostic handling of one signed query request."""
