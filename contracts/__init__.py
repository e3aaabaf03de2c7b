"""Wire protocol and dataset contract shared by hub and node, and the pure rules both
compute: pydantic models and functions, no I/O, no database, web or HTTP library.

Exceptions raised here all derive from `contracts.errors.ContractError`.
"""
