"""Plumbing both sides run, parametrised by the side: never imports `hub` or `node`.

Mechanisms, not policy: each function takes what differs between hub and node (a prefix, a
versions folder, a lock key, an exception to raise) as an argument. What goes over the wire
and the pure rules both sides compute stay in `contracts`.
"""
