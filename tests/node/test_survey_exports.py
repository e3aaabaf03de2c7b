"""Kobo and ODK Central exports of real XLSForms, generated here: read back exactly, drafted
safely, repeats joined to their submission, both ODK layouts under one contract.

Fixtures come from tests/node/survey_exports.py (no binary files in the repository): the two
XLSForms in ../shared/data/xlsforms (a biomass plot form with nested repeats, a national
coverage survey with a child repeat) and a disability scorecard with a canary respondent.
"""

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from contracts.v1 import DatasetContract
from node.datasets import drafting, readers, service
from node.datasets.codebook import read_codebook
from node.datasets.exceptions import DatasetInvalid, FileUnreadable
from node.datasets.schemas import ContractDraft
from node.db import dispose_engines
from tests.node import survey_exports as se

LAYOUTS = ("kobo_xlsx", "kobo_csv", "kobo_csv_bom", "kobo_csv_1252", "odk_zip", "odk_split")


@dataclass
class Fixture:
    name: str
    form: Path
    survey: se.Survey
    files: dict[str, Path]
    exports: dict[str, dict[str, se.Export]]  # layout -> section -> what was written


def _forms(folder: Path) -> list[Path]:
    forms = [se.SHARED_FORMS / f for f in se.REAL_FORMS if (se.SHARED_FORMS / f).exists()]
    return [*forms, se.scorecard_form(folder / "disability_scorecard.xlsx")]


def _build(folder: Path, form_path: Path) -> Fixture:
    survey = se.generate(se.read_form(form_path), submissions=40, seed=11)
    stem = form_path.stem
    files = {
        "kobo_xlsx": folder / f"{stem}-kobo.xlsx",
        "kobo_csv": folder / f"{stem}-kobo.csv",
        "kobo_csv_bom": folder / f"{stem}-kobo-bom.csv",
        "kobo_csv_1252": folder / f"{stem}-kobo-1252.csv",
        "odk_zip": folder / f"{stem}-odk.zip",
        "odk_split": folder / f"{stem}-odk-split.zip",
    }
    exports = {
        "kobo_xlsx": se.kobo_xlsx(survey, files["kobo_xlsx"]),
        "kobo_csv": {"": se.kobo_csv(survey, files["kobo_csv"])},
        "kobo_csv_bom": {"": se.kobo_csv(survey, files["kobo_csv_bom"], encoding="utf-8-sig")},
        "kobo_csv_1252": {"": se.kobo_csv(survey, files["kobo_csv_1252"], encoding="cp1252")},
        "odk_zip": se.odk_zip(survey, files["odk_zip"]),
        "odk_split": se.odk_zip(survey, files["odk_split"], split=True),
    }
    return Fixture(stem, form_path, survey, files, exports)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Fixture]:
    folder = tmp_path_factory.mktemp("exports")
    return {f.stem: _build(folder, f) for f in _forms(folder)}


@pytest.fixture(autouse=True)
def _engines() -> Iterator[None]:
    yield
    dispose_engines()


def _cases() -> list[tuple[str, str, str]]:
    """(form, layout, section) for every table of every layout of every form."""
    folder = Path("/nonexistent")
    out = []
    for form in [*(f for f in se.REAL_FORMS if (se.SHARED_FORMS / f).exists()), "scorecard"]:
        path = se.SHARED_FORMS / form if form != "scorecard" else None
        sections = (
            [s.name for s in se.read_form(path).sections()] if path else ["", "indicator_scores"]
        )
        stem = Path(form).stem if path else "disability_scorecard"
        for layout in LAYOUTS:
            for section in sections:
                if section and layout.startswith("kobo_csv"):
                    continue  # Kobo CSV exports hold the main table only
                out.append((stem, layout, section))
    del folder
    return out


CASES = _cases()


def _read(fx: Fixture, layout: str, section: str, tmp: Path, codebook: bool) -> readers.Table:
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    path = fx.files[layout]
    return readers.read_table(
        path=path,
        fmt=None,
        workdir=work,
        max_bytes=1 << 30,
        codebook=read_codebook(fx.form) if codebook else None,
        repeat=(section or None) if layout.startswith("odk") else None,
        sheet=(section or None) if layout == "kobo_xlsx" else None,
    )


def _same(got: object, want: str | None) -> bool:
    if got == want:
        return True
    if got is None or want is None:
        return False
    try:
        return math.isclose(float(str(got)), float(want))
    except ValueError:
        return False


def _lossy(value: str | None) -> str | None:
    """What Windows-1252 keeps of a value (`?` for what it cannot hold)."""
    return None if value is None else value.encode("cp1252", errors="replace").decode("cp1252")


@pytest.mark.parametrize(("form", "layout", "section"), CASES)
def test_every_value_reads_back_as_written(fixtures, tmp_path, form, layout, section) -> None:
    fx = fixtures[form]
    export = fx.exports[layout][section]
    for codebook in (False, True):
        table = _read(fx, layout, section, tmp_path, codebook)
        assert not [i for i in table.issues if i.severity == "error"], table.issues
        expected_format = "kobo" if layout.startswith("kobo") else "odk"
        assert table.source.format == expected_format  # found without --format
        frame = table.frame.collect()
        assert frame.height == export.rows
        expected = dict(export.expected)
        if section:
            tool = "kobo" if layout == "kobo_xlsx" else "odk"
            expected.update(se.expected_joined(fx.survey, section, tool))
        for name, written in expected.items():
            values = [_lossy(v) for v in written] if layout == "kobo_csv_1252" else written
            assert name in frame.columns, (name, sorted(frame.columns))
            got = frame[name].to_list()
            wrong = [i for i, (g, w) in enumerate(zip(got, values, strict=True)) if not _same(g, w)]
            assert not wrong, f"{name}: rows {wrong[:5]} read {got[wrong[0]]!r}"


def _text_values(fx: Fixture) -> set[str]:
    """Every value the generator wrote into a text or name question (people, comments)."""
    out: set[str] = set()
    for section in fx.survey.form.sections():
        texts = [f.name for f in section.fields if f.type == "text"]
        for instance in fx.survey.instances(section.name):
            out.update(v for k, v in instance.values.items() if k in texts and v)
    return out


def _draft(fx: Fixture, layout: str, section: str, tmp: Path, codebook: bool) -> ContractDraft:
    return service.draft_contract(
        home=tmp / "home",
        path=fx.files[layout],
        name="survey",
        codebook_path=fx.form if codebook else None,
        repeat=(section or None) if layout.startswith("odk") else None,
        sheet=(section or None) if layout == "kobo_xlsx" else None,
    )


@pytest.mark.parametrize(("form", "layout", "section"), CASES)
def test_drafts_never_raise_and_never_publish_text(fixtures, tmp_path, form, layout, section):
    fx = fixtures[form]
    texts = _text_values(fx)
    people = {v for v in texts if v.split()[0] in se.NAMES}
    assert people or not texts
    for codebook in (False, True):
        drafted = _draft(fx, layout, section, tmp_path, codebook)
        columns = (
            readers.read_table(
                path=fx.files[layout],
                fmt=None,
                workdir=tmp_path,
                max_bytes=1 << 30,
                repeat=(section or None) if layout.startswith("odk") else None,
                sheet=(section or None) if layout == "kobo_xlsx" else None,
            )
            .frame.collect_schema()
            .names()
        )
        noted = {n.column for n in drafted.notes}
        assert set(columns) - {readers.ROW_INDEX} <= noted  # every column has a reason
        for column in drafted.contract.columns:
            levels = set(column.level_codes)
            assert not levels & texts, (column.name, levels & texts)
            if column.type == "categorical":
                assert codebook or levels == {"yes", "no"}, column.name
        public = json.dumps(drafted.contract.model_dump(mode="json"), ensure_ascii=False)
        everything = public + json.dumps([n.model_dump() for n in drafted.notes])
        for value in (se.CANARY_COMMENT, se.CANARY_NAME, str(se.CANARY_INCOME), *people):
            assert value not in everything
        if section:
            unit = drafted.contract.privacy.unit_key
            assert unit in ("_submission__uuid", "SUBMISSION_KEY")
            per_submission = _rows_per_submission(fx.survey, section)
            assert drafted.contract.privacy.max_contributions >= per_submission
            assert drafted.contract.privacy.max_contributions in drafting.CONTRIBUTION_GRID


def _rows_per_submission(survey: se.Survey, section: str) -> int:
    counts: dict[str, int] = {}
    for instance in survey.instances(section):
        key = (instance.submission or instance).key
        counts[key] = counts.get(key, 0) + 1
    return max(counts.values(), default=1)


def _import(home: Path, path: Path, contract: DatasetContract, **kwargs) -> pl.DataFrame:
    service.import_file(home=home, path=path, contract=contract, **kwargs)
    return pl.read_parquet(service.load(home=home, name=contract.name).parquet_path)


def _publishable(drafted: ContractDraft) -> DatasetContract:
    """The draft as a steward would publish it: measures without bounds left out."""
    columns = tuple(
        c
        for c in drafted.contract.columns
        if (not (c.role == "measure" and c.lower is None) and c.role != "unit_key")
        or c.name == drafted.contract.privacy.unit_key
    )
    return drafted.contract.model_copy(update={"columns": columns})


def _truth_shares(survey: se.Survey, section: str, question: str) -> dict[str, float]:
    answers = [i.values.get(question) for i in survey.instances(section)]
    answered = [a.split() for a in answers if a is not None]
    options = {o for a in answered for o in a}
    return {o: sum(o in a for a in answered) / len(answered) for o in options}


@pytest.mark.parametrize(
    ("form", "section", "question"),
    [
        ("disability_scorecard", "", "barriers"),
        ("liberiaCoverage", "", "ifa3a"),
        ("liberiaCoverage", "child_repeat", "q4"),
        ("UCL_Biomass_Plot_Form", "", "disturbance"),
    ],
)
def test_both_odk_layouts_import_under_one_contract_with_equal_shares(
    fixtures, tmp_path, form, section, question
) -> None:
    if form not in fixtures:
        pytest.skip("../shared/data is not present")
    fx = fixtures[form]
    repeat = section or None
    drafted = _draft(fx, "odk_zip", section, tmp_path, codebook=True)
    contract = _publishable(drafted)
    default = _import(
        tmp_path / "a", fx.files["odk_zip"], contract, codebook_path=fx.form, repeat=repeat
    )
    split = _import(
        tmp_path / "b", fx.files["odk_split"], contract, codebook_path=fx.form, repeat=repeat
    )
    truth = _truth_shares(fx.survey, section, question)
    options = [c for c in default.columns if c.startswith(f"{question}_")]
    assert options
    for column in options:
        assert default[column].to_list() == split[column].to_list(), column
        option = column[len(question) + 1 :].removeprefix("_")  # q__other beside q_other
        answered = split[column].drop_nulls()
        share = (answered == "yes").mean() if answered.len() else 0.0
        assert share == pytest.approx(truth.get(option, 0.0)), column
    # Without the form: the split layout's option columns, confirmed by the steward, and the
    # default layout derives them from the answer list under that very contract.
    confirmed = {c: ("yes", "no") for c in options if c in split.columns}
    plain = service.draft_contract(
        home=tmp_path / "c",
        path=fx.files["odk_split"],
        name="survey",
        repeat=repeat,
        choices=drafting.Choices(categorical=confirmed),
    )
    bare = _publishable(plain)
    seen = [c for c in options if bare.column(c) is not None]
    assert seen
    from_split = _import(tmp_path / "d", fx.files["odk_split"], bare, repeat=repeat)
    from_default = _import(tmp_path / "e", fx.files["odk_zip"], bare, repeat=repeat)
    for column in seen:
        assert (
            from_split[column].to_list()
            == from_default[column].to_list()
            == default[column].to_list()
        )


@pytest.mark.parametrize("layout", ["odk_zip", "kobo_xlsx"])
def test_nested_repeat_rows_carry_their_tree_and_plot_and_count_per_submission(
    fixtures, tmp_path, layout
) -> None:
    if "UCL_Biomass_Plot_Form" not in fixtures:
        pytest.skip("../shared/data is not present")
    fx = fixtures["UCL_Biomass_Plot_Form"]
    table = _read(fx, layout, "stems", tmp_path, codebook=True).frame.collect()
    stems = fx.survey.instances("stems")
    assert table.height == len(stems)
    # Tree columns and plot columns are filled on every stem where the form filled them.
    assert table["tag"].to_list() == [s.parent.values["tag"] for s in stems]  # type: ignore[union-attr]
    assert table["slope"].cast(pl.Float64).to_list() == [
        None if s.submission.values["slope"] is None else float(s.submission.values["slope"])  # type: ignore[union-attr]
        for s in stems
    ]
    drafted = _draft(fx, layout, "stems", tmp_path, codebook=True)
    unit = drafted.contract.privacy.unit_key
    assert unit in ("SUBMISSION_KEY", "_submission__uuid")
    stored = _import(
        tmp_path / "h",
        fx.files[layout],
        _publishable(drafted),
        codebook_path=fx.form,
        **({"repeat": "stems"} if layout == "odk_zip" else {"sheet": "stems"}),
    )
    assert stored.height == len(stems)


def test_repeat_rows_without_their_parent_are_refused_by_row(fixtures, tmp_path) -> None:
    if "UCL_Biomass_Plot_Form" not in fixtures:
        pytest.skip("../shared/data is not present")
    fx = fixtures["UCL_Biomass_Plot_Form"]
    folder = tmp_path / "odk"
    folder.mkdir()
    files = se.odk_files(fx.survey, folder)
    trees_path, _ = files["trees"]
    lines = trees_path.read_text(encoding="utf-8").splitlines()
    orphaned = lines[1].rsplit(",", 1)[1]  # the KEY of the first tree
    trees_path.write_text("\n".join([lines[0], *lines[2:]]) + "\n", encoding="utf-8")
    stems_of_it = [
        n + 1
        for n, s in enumerate(fx.survey.instances("stems"))
        if s.parent.key == orphaned  # type: ignore[union-attr]
    ]
    main, _ = files[""]
    table = readers.read_table(
        path=main, fmt=None, workdir=tmp_path, max_bytes=1 << 30, repeat="stems"
    )
    errors = [i for i in table.issues if i.severity == "error"]
    if not stems_of_it:
        assert not errors
        return
    assert [(i.rule, i.rows) for i in errors] == [("repeat_without_parent", tuple(stems_of_it))]


def test_kobo_found_without_format_and_a_hint_when_named_otherwise(fixtures, tmp_path) -> None:
    fx = fixtures["disability_scorecard"]
    named_csv = readers.read_table(
        path=fx.files["kobo_csv"], fmt="csv", workdir=tmp_path, max_bytes=1 << 30
    )
    hints = [i for i in named_csv.issues if i.rule == "format_hint"]
    assert len(hints) == 1
    assert "KoboToolbox" in hints[0].message
    assert "--format kobo" in hints[0].message
    named_odk = readers.read_table(
        path=fx.files["kobo_csv"], fmt="odk", workdir=tmp_path, max_bytes=1 << 30
    )
    assert [i.rule for i in named_odk.issues] == ["format_hint"]


def test_windows_1252_export_names_the_columns_that_lost_text(fixtures, tmp_path) -> None:
    fx = fixtures["disability_scorecard"]
    drafted = _draft(fx, "kobo_csv_1252", "", tmp_path, codebook=True)
    lossy = {n.column for n in drafted.notes if n.flag == "warning" and "lost" in n.note}
    affected = {
        f.name
        for f in fx.survey.form.root.fields
        if any(se.DEVANAGARI in (i.values.get(f.name) or "") for i in fx.survey.submissions)
    }
    assert affected
    assert lossy == affected
    contract = drafted.contract
    report = service.validate_file(
        home=tmp_path / "h", path=fx.files["kobo_csv_1252"], contract=_publishable(drafted)
    )
    warned = {i.column for i in report.issues if i.rule == "lossy_encoding"}
    assert warned == {c for c in affected if contract.column(c) is not None}
    assert all(i.severity == "warning" for i in report.issues if i.rule == "lossy_encoding")


def test_ragged_records_are_reported_by_record_and_file_line(tmp_path) -> None:
    text = (
        "id;comment;sex\n"
        "1;plain;f\n"
        '2;"two\nline\nnote";m\n'  # one record over three lines
        "3;extra;f;oops\n"  # record 3, file line 6
        "4;fine;m\n"
        '5;"a\nb";f;again\n'  # record 5, file line 8
    )
    path = tmp_path / "ragged.csv"
    path.write_text(text, encoding="utf-8")
    table = readers.read_table(path=path, fmt=None, workdir=tmp_path, max_bytes=1 << 20)
    (ragged,) = [i for i in table.issues if i.rule == "ragged_row"]
    assert (ragged.rows, ragged.lines) == ((3, 5), (6, 8))
    with pytest.raises(DatasetInvalid) as refused:
        service.draft_contract(home=tmp_path / "h", path=path, name="x")
    assert "file lines 6, 8" in str(refused.value)


def test_a_duplicate_header_is_named_with_its_columns(tmp_path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("id,age,sex,age\n1,30,f,31\n", encoding="utf-8")
    table = readers.read_table(path=path, fmt=None, workdir=tmp_path, max_bytes=1 << 20)
    (issue,) = [i for i in table.issues if i.severity == "error"]
    assert issue.rule == "duplicate_header"
    assert issue.column == "age"
    assert "B (2)" in issue.message
    assert "D (4)" in issue.message


def test_a_kobo_csv_has_no_repeats_to_ask_for(fixtures, tmp_path) -> None:
    fx = fixtures["disability_scorecard"]
    with pytest.raises(FileUnreadable, match="XLSX"):
        readers.read_table(
            path=fx.files["kobo_csv"],
            fmt=None,
            workdir=tmp_path,
            max_bytes=1 << 30,
            repeat="indicator_scores",
        )


def test_ragged_records_of_a_generated_export_name_rows_and_lines(tmp_path) -> None:
    """A Kobo CSV whose second respondent's comment spans three lines, and whose fifth and
    eighth records gained a field: records 5 and 8 start on file lines 8 and 11."""
    form = se.read_form(se.scorecard_form(tmp_path / "form.xlsx"))
    survey = se.generate(form, submissions=10, seed=2, canary=False)
    survey.submissions[1].values["comment"] = "three\nline\ncomment"
    path = tmp_path / "export.csv"
    se.kobo_csv(survey, path)
    records = path.read_bytes().decode("utf-8").split("\r\n")
    for n in (5, 8):
        records[n] += ";extra"  # record n (the header is record 0)
    path.write_bytes("\r\n".join(records).encode("utf-8"))
    table = readers.read_table(path=path, fmt=None, workdir=tmp_path, max_bytes=1 << 20)
    (ragged,) = [i for i in table.issues if i.rule == "ragged_row"]
    assert (ragged.rows, ragged.lines) == ((5, 8), (8, 11))
