"""The fast canonical JSON path writes exactly the bytes the rfc8785 reference does."""

import math
import random
import string
import struct

import pytest
import rfc8785

from contracts.signing import canonical_json

EDGE_FLOATS = [
    0.0,
    -0.0,
    1.0,
    -3.0,
    0.5,
    1e-4,
    9.999e-5,
    1e-5,
    1e-7,
    1.5e-7,
    123.456,
    0.1 + 0.2,
    1e15,
    1e16,
    9.999999999999998e15,
    2.0**53,
    2.0**53 - 1,
    2.0**53 + 2,
    2.0**60,
    1e20,
    1e21,
    1e22,
    5e-324,
    1.7976931348623157e308,
    0.0005,
    1 / 3,
    -2 / 3,
]
EDGE_STRINGS = [
    "",
    "plain",
    'quote " and \\ backslash',
    "\b\f\n\r\t",
    "".join(chr(i) for i in range(32)),
    "\x7f",
    "é ü ñ",
    "नेपाल",
    "€ \u2028 \u2029",
    "😀 \U0001f600",
    "\ufeff",
]


def _random_float(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.3:
        return rng.choice(EDGE_FLOATS)
    if kind < 0.6:
        return rng.uniform(-1e6, 1e6)
    bits = rng.getrandbits(64)
    value = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
    return 1.0 if math.isnan(value) or math.isinf(value) else value


def _random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, 1, -1, 2**53 - 1, -(2**53) + 1, rng.randrange(-(10**9), 10**9)])
    if kind == 3:
        return _random_float(rng)
    if kind == 4:
        if rng.random() < 0.5:
            return rng.choice(EDGE_STRINGS)
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(12)))
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = [*string.ascii_letters, "_", "a_b", "é", "\U0001f600", "\ue000", "Z", "10", "9"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(5))}


@pytest.mark.parametrize("value", [*EDGE_FLOATS, *EDGE_STRINGS])
def test_edge_scalars_match_the_reference(value: object) -> None:
    document = {"v": value, "list": [value, value]}
    assert canonical_json(document) == rfc8785.dumps(document)


def test_random_documents_match_the_reference() -> None:
    rng = random.Random(8785)
    for _ in range(3000):
        document = {"root": _random_value(rng)}
        assert canonical_json(document) == rfc8785.dumps(document), document


def test_unrepresentable_values_are_still_refused() -> None:
    for bad in ({"n": math.nan}, {"n": math.inf}, {"n": 2**60}, {"s": "\ud800"}):
        with pytest.raises(rfc8785.CanonicalizationError):
            canonical_json(bad)


def test_exponent_floats_next_to_nul_strings_match_the_reference() -> None:
    # Exponent-form floats are written by the reference into placeholders; a NUL in a
    # string or key (what placeholders are made of) sends the document to the reference.
    for document in (
        {"delta": 1e-7, "tiny": [1e-5, -3e-300], "big": 2.5e22},
        {"s": "\x000\x00", "delta": 1e-7},
        {"\x000\x00": 1e-7, "d": 1e-9},
        {"a": [1e-7] * 12, "b": "\\u00001\\u0000"},
    ):
        assert canonical_json(document) == rfc8785.dumps(document), document
