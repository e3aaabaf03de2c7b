"""The streaming import path: vectorised field counts agree with the csv module, block by
block, and the contribution check (run from the unit key alone) finds and drops the same rows."""

import csv
import io
import random

import polars as pl
import pytest

from node.datasets import records, service
from node.datasets.exceptions import DatasetInvalid
from node.db import dispose_engines
from tests.node.datasets_support import simple_contract, write_delimited


@pytest.fixture(autouse=True)
def _engines():
    yield
    dispose_engines()


def _csv_module(data: bytes, delimiter: str) -> records.Shape:
    """The csv module's counts; a record's file line is one past the lines read before it."""
    shape = records.Shape()
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter)
    shape.width = len(next(reader))
    line = reader.line_num + 1
    for n, record in enumerate(reader):
        if len(record) != shape.width:
            (shape.ragged if record else shape.blank).append(n)
            (shape.ragged_lines if record else shape.blank_lines).append(line)
        line = reader.line_num + 1
    return shape


def _scan(data: bytes, delimiter: str = ",", piece: int | None = None) -> records.Shape | None:
    stream = io.BytesIO(data)
    # A small `piece` makes every record straddle block boundaries.
    return records.scan(lambda n: stream.read(piece or n), delimiter)


PLAIN = {
    "simple": b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n",
    "crlf and blank lines": b"a,b\r\n1,2\r\n\r\n3\r\n\r\n4,5\r\n",
    "no final line break": b"a,b\n1,2\n3,4,5",
    "quoted delimiters, line breaks and escaped quotes": (
        b'"a","b","c"\n"1","x, y","z"\n"2","line\nbreak","say ""hi"""\n"3","",""\n"4"\n'
    ),
    "kobo style, semicolons": b'"id";"note"\n"1";"a;b"\n"2";"\xe0\xa4\xaa\xe0\xa4\xbe"\n"3"\n',
    "quoted crlf inside a field": b'a,b\r\n"x\r\ny",2\r\n3,4,5\r\n',
    "empty quoted fields and whitespace lines": b'a,b\n"",""\n  \n,\n',
}
TRICKY = {
    "stray quote inside a field": b'a,b\n1,x"y\n2,3\n',
    "text after a closing quote": b'a,b\n"1"x,2\n3,4\n',
    "unclosed quote": b'a,b\n"1,2\n3,4\n',
    "lone carriage return": b"a,b\r1,2\r3\r",
}


@pytest.mark.parametrize("name", sorted(PLAIN))
@pytest.mark.parametrize("piece", [None, 1, 3, 7])
def test_field_counts_match_the_csv_module(name: str, piece: int | None) -> None:
    data = PLAIN[name]
    delimiter = ";" if "semicolons" in name else ","
    assert _scan(data, delimiter, piece) == _csv_module(data, delimiter)


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_files_the_scanner_cannot_vouch_for_are_left_to_the_csv_module(name: str) -> None:
    assert _scan(TRICKY[name]) is None


def test_random_quoted_files_match_the_csv_module() -> None:
    rng = random.Random(5)
    alphabet = ["a", "b", ",", "\n", "\r\n", '"', " ", "é", "पा"]
    for _ in range(300):
        rows = []
        for _ in range(rng.randint(1, 12)):
            width = rng.choice([0, 1, 2, 3, 3, 3, 4])
            cells = ["".join(rng.choices(alphabet, k=rng.randint(0, 5))) for _ in range(width)]
            quoted = [
                '"' + c.replace('"', '""') + '"'
                if rng.random() < 0.5 or any(ch in c for ch in ',"\r\n')
                else c
                for c in cells
            ]
            rows.append(",".join(quoted))
        data = ("x,y,z\n" + rng.choice(["\n", "\r\n"]).join(rows)).encode()
        for piece in (None, 2, 5):
            shape = _scan(data, ",", piece)
            assert shape is not None
            assert shape == _csv_module(data, ","), data


def test_a_long_unbroken_file_falls_back_rather_than_guess() -> None:
    data = b"a\n" + b"x" * (csv.field_size_limit() + 10)
    assert _scan(data, ",", 1 << 16) is None


def test_ragged_rows_in_a_quoted_export_are_named_by_row(tmp_path) -> None:
    home = tmp_path / "h"
    path = tmp_path / "q.csv"
    path.write_bytes(
        b'"id","town","sex","score"\r\n"1","Lalit\r\npur","f","1"\r\n"2","a,b","m"\r\n'
        b'"3","c","f","2"\r\n"4","d","m","3","x"\r\n'
    )
    with pytest.raises(DatasetInvalid) as info:
        service.import_file(home=home, path=path, contract=simple_contract())
    issue = next(i for i in info.value.report.issues if i.rule == "ragged_row")
    assert (issue.count, issue.rows) == (2, (2, 4))
    assert service.list_versions(home=home) == []


def _contributions_file(tmp_path):
    # Units 7 and 9 come back later in the file, interleaved with others; one key is blank
    # padded, which is the same unit once trimmed.
    ids = ["7", "8", "9", "7", "10", " 9 ", "7", "11", "9", "12"]
    rows = [[i, "town", "f", "1"] for i in ids]
    return write_delimited(tmp_path / "units.csv", ["id", "town", "sex", "score"], rows)


def test_units_over_the_limit_are_found_across_the_file_from_the_key_alone(tmp_path) -> None:
    home = tmp_path / "h"
    path = _contributions_file(tmp_path)
    contract = simple_contract().model_copy(
        update={"privacy": simple_contract().privacy.model_copy(update={"max_contributions": 2})}
    )
    with pytest.raises(DatasetInvalid) as info:
        service.import_file(home=home, path=path, contract=contract)
    issue = next(i for i in info.value.report.issues if i.rule == "too_many_rows_per_unit")
    assert (issue.count, issue.rows, issue.column) == (2, (7, 9), "id")
    assert service.list_versions(home=home) == []

    result = service.import_file(home=home, path=path, contract=contract, excess="keep_first")
    assert result.version.rows == 8
    kept = pl.read_parquet(service.load(home=home, name="towns").parquet_path)
    assert kept.height == 8
    warning = next(i for i in result.report.issues if i.rule == "too_many_rows_per_unit")
    assert (warning.severity, warning.rows) == ("warning", (7, 9))


def test_no_unit_over_the_limit_means_no_issue(tmp_path) -> None:
    rows = [[str(i), "town", "f", "1"] for i in range(50)]
    path = write_delimited(tmp_path / "ok.csv", ["id", "town", "sex", "score"], rows)
    result = service.import_file(home=tmp_path / "h", path=path, contract=simple_contract())
    assert result.version.rows == 50
    assert not [i for i in result.report.issues if i.rule == "too_many_rows_per_unit"]
