"""HTTP routes of the node: parse, call one service, return."""
