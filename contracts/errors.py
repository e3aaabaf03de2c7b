"""Errors of the contracts package.

ContractError
├── SignatureInvalid   a JWS did not verify, was malformed or used another algorithm
├── KeyInvalid         a JWK could not be read as an Ed25519 key
└── RhoNotFinite       a privacy cost to charge or sum is NaN or infinite (contracts.budget)
"""


class ContractError(Exception):
    """Root of every error the contracts package raises."""


class SignatureInvalid(ContractError):
    """A signature did not verify against the pinned key."""


class KeyInvalid(ContractError):
    """A key is not an Ed25519 JWK."""


class RhoNotFinite(ContractError):
    """A privacy cost is not a finite number, so it can be neither charged nor summed."""
