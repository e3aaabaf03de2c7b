"""`contracts.spreadsheet`: text a spreadsheet would run is neutralised, numbers stay numbers."""

import pytest

from contracts.spreadsheet import safe_cell, safe_row


@pytest.mark.parametrize(
    "text",
    [
        '=HYPERLINK("http://x","click")',
        "+cmd|' /C calc'!A0",
        "-2+3+cmd|x",
        "@SUM(A1)",
        "\tx",
        "\r=1",
    ],
)
def test_formula_text_is_prefixed(text: str) -> None:
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", [-3.5, -2, 0.0, 7, "-3.5", "-1e-05", "+5", "12", ".5", "", "abc"])
def test_numbers_and_plain_text_stay_as_they_are(value: object) -> None:
    assert safe_cell(value) == value
    assert type(safe_cell(value)) is type(value)


def test_none_and_rows() -> None:
    assert safe_cell(None) is None
    assert safe_row(["=1", -1.5, None, "ok"]) == ["'=1", -1.5, None, "ok"]
