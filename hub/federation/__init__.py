"""Node registry and fan-out of signed query requests; combination of releases."""
