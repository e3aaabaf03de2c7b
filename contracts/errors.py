"""Errors of the contracts package.

ContractError
├── SignatureInvalid   a JWS did not verify, was malformed or used another algorithm
└── KeyInvalid         a JWK could not be read as an Ed25519 key
"""


class ContractError(Exception):
    """Root of every error the contracts package raises."""


class SignatureInvalid(ContractError):
    """A signature did not verify against the pinned key."""


class KeyInvalid(ContractError):
    """A key is not an Ed25519 JWK."""
