"""Wire protocol and dataset contract shared by hub and node: pure pydantic, no I/O.

Exceptions raised here all derive from `contracts.errors.ContractError`.
"""
