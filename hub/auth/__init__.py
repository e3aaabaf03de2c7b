"""Minimal hub auth: hashed bearer API tokens with an organisation and a role."""
