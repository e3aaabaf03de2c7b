"""Realistic export fixtures for dataset tests: Kobo, ODK Central, XLSForm, legacy encodings."""

import zipfile
from pathlib import Path

import openpyxl

from contracts.v1 import Column, DatasetContract, Level, PrivacyUnit

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
NEPALI = "काठमाडौं उपत्यकामा पानीको समस्या"
BENGALI = "পানি সমস্যা আছে"
VIETNAMESE = "Thiếu nước sạch ở xã"
SWAHILI = "Maji safi hayapatikani kijijini"
IDENT_CANARY = "Zq Canaryname Sharma"
PHONE_CANARY = "+9779812345678"


def xlsform(path: Path) -> Path:
    """An XLSForm with English and Nepali labels, a group, select_one and select_multiple."""
    wb = openpyxl.Workbook()
    survey = wb.active
    assert survey is not None
    survey.title = "survey"
    rows = [
        ("type", "name", "label::English (en)", "label::Nepali (ne)", "constraint", "required"),
        ("start", "start", None, None, None, None),
        ("begin group", "respondent", "Respondent", "उत्तरदाता", None, None),
        ("text", "full_name", "Name of respondent", "उत्तरदाताको नाम", None, None),
        ("text", "mobile", "Mobile number", "मोबाइल नम्बर", None, None),
        ("integer", "age", "Age in years", "उमेर", ". >= 0 and . <= 120", "yes"),
        ("select_one sex", "sex", "Sex", "लिङ्ग", None, "yes"),
        ("end group", None, None, None, None, None),
        ("select_one district", "district", "District", "जिल्ला", None, None),
        ("select_multiple services", "services", "Services used", "प्रयोग गरिएका सेवाहरू", None, None),
        ("geopoint", "location", "Location", "स्थान", None, None),
        ("text", "comments", "Comments", "टिप्पणी", None, None),
        ("note", "thanks", "Thank you", "धन्यवाद", None, None),
    ]
    for row in rows:
        survey.append(row)
    choices = wb.create_sheet("choices")
    for row in (
        ("list_name", "name", "label::English (en)", "label::Nepali (ne)"),
        ("sex", "female", "Female", "महिला"),
        ("sex", "male", "Male", "पुरुष"),
        ("sex", "third_gender", "Third gender", "तेस्रो लिङ्ग"),
        ("district", "kathmandu", "Kathmandu", "काठमाडौं"),
        ("district", "saptari", "Saptari", "सप्तरी"),
        ("services", "health", "Health post", "स्वास्थ्य चौकी"),
        ("services", "water", "Drinking water", "खानेपानी"),
        ("services", "school", "School", "विद्यालय"),
    ):
        choices.append(row)
    settings = wb.create_sheet("settings")
    settings.append(("form_title", "form_id", "default_language"))
    settings.append(("Dalit basic services survey", "dalit_services", "English (en)"))
    wb.save(path)
    return path


KOBO_HEADER = [
    "start",
    "respondent/full_name",
    "respondent/mobile",
    "respondent/age",
    "respondent/sex",
    "district",
    "services",
    "services/health",
    "services/water",
    "services/school",
    "location",
    "_location_latitude",
    "comments",
    "_id",
    "_uuid",
    "_submission_time",
    "_validation_status",
    "_index",
]


def kobo_rows(n: int = 40) -> list[list[str]]:
    sexes = ("female", "male", "third_gender")
    rows = []
    for i in range(n):
        picked = [s for j, s in enumerate(("health", "water", "school")) if (i >> j) & 1]
        name = IDENT_CANARY if i == 3 else f"Person {chr(65 + i % 26)}{i} Devi"
        rows.append(
            [
                f"2024-03-{1 + i % 28:02d}T09:00:00.000+05:45",
                name,
                PHONE_CANARY if i == 3 else f"+97798{i:08d}",
                str(18 + i % 60),
                sexes[i % 3],
                ("kathmandu", "saptari")[i % 2],
                " ".join(picked),
                *["1" if s in picked else "0" for s in ("health", "water", "school")],
                f"27.{700 + i} 85.{300 + i} 1300 5",
                f"27.{700 + i}",
                NEPALI if i % 2 else "",
                str(1000 + i),
                f"a1b2c3d4-0000-4000-8000-{i:012d}",
                f"2024-03-{1 + i % 28:02d}T10:00:00",
                "",
                str(i + 1),
            ]
        )
    return rows


def write_delimited(
    path: Path, header: list[str], rows: list[list[str]], *, sep: str = ",", encoding: str = "utf-8"
) -> Path:
    def cell(value: str) -> str:
        if any(ch in value for ch in (sep, '"', "\n")):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [sep.join(cell(v) for v in row) for row in [header, *rows]]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def kobo_csv(path: Path, n: int = 40) -> Path:
    """A Kobo CSV export as KoboToolbox writes it by default: `;`-separated, XML names."""
    return write_delimited(path, KOBO_HEADER, kobo_rows(n), sep=";")


def kobo_xlsx(path: Path, n: int = 40) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(KOBO_HEADER)
    for row in kobo_rows(n):
        # Kobo writes numbers as numbers in XLSX exports.
        ws.append([int(v) if v.isdigit() else (v or None) for v in row])
    wb.save(path)
    return path


def kobo_contract(version: int = 1) -> DatasetContract:
    yes_no = (Level(code="yes"), Level(code="no"))
    return DatasetContract(
        name="dalit_services",
        version=version,
        title="Dalit basic services survey",
        columns=(
            Column(name="_uuid", type="string", role="unit_key"),
            Column(name="full_name", type="string", role="identifier", treatment="hash"),
            Column(name="mobile", type="string", role="identifier"),
            Column(name="age", type="integer", role="measure", lower=0, upper=120),
            Column(
                name="sex",
                type="categorical",
                levels=tuple(Level(code=c) for c in ("female", "male", "third_gender")),
            ),
            Column(
                name="district",
                type="categorical",
                levels=(Level(code="kathmandu"), Level(code="saptari")),
            ),
            Column(name="services_health", type="categorical", levels=yes_no),
            Column(name="services_water", type="categorical", levels=yes_no),
            Column(name="comments", type="string", role="free_text"),
            Column(name="_submission_time", type="datetime", role="other"),
        ),
        privacy=PrivacyUnit(unit_key="_uuid", max_contributions=1),
    )


def odk_zip(path: Path, households: int = 12) -> Path:
    """An ODK Central export: main table plus the `members` repeat joined by PARENT_KEY."""
    main_header = [
        "SubmissionDate",
        "hh-district",
        "hh-head_name",
        "hh-size",
        "meta-instanceID",
        "SubmitterID",
        "SubmitterName",
        "KEY",
        "ReviewState",
    ]
    main_rows = []
    member_rows = []
    for h in range(households):
        key = f"uuid:0000aaaa-{h:04d}-4000-8000-000000000000"
        size = 1 + h % 4
        main_rows.append(
            [
                f"2024-05-{1 + h:02d}T08:30:00.000Z",
                ("kathmandu", "saptari")[h % 2],
                f"Head {h} Bishwakarma",
                str(size),
                key,
                "7",
                "enumerator seven",
                key,
                "",
            ]
        )
        for m in range(size):
            member_rows.append(
                [
                    str(5 + 13 * m + h),
                    ("female", "male")[m % 2],
                    VIETNAMESE if m == 0 else SWAHILI,
                    key,
                    f"{key}/members[{m + 1}]",
                ]
            )
    member_header = ["members-age", "members-sex", "members-note", "PARENT_KEY", "KEY"]
    main = write_delimited(path.parent / "households.csv", main_header, main_rows)
    members = write_delimited(path.parent / "households-members.csv", member_header, member_rows)
    with zipfile.ZipFile(path, "w") as z:
        z.write(main, "households.csv")
        z.write(members, "households-members.csv")
    return path


def members_contract() -> DatasetContract:
    return DatasetContract(
        name="members",
        version=1,
        title="Household members",
        columns=(
            Column(name="PARENT_KEY", type="string", role="unit_key"),
            Column(name="age", type="integer", role="measure", lower=0, upper=120),
            Column(
                name="sex", type="categorical", levels=(Level(code="female"), Level(code="male"))
            ),
            Column(
                name="district",
                type="categorical",
                levels=(Level(code="kathmandu"), Level(code="saptari")),
            ),
            Column(name="note", type="string", role="free_text"),
        ),
        privacy=PrivacyUnit(unit_key="PARENT_KEY", max_contributions=4),
    )


def simple_contract(name: str = "towns") -> DatasetContract:
    return DatasetContract(
        name=name,
        version=1,
        title="Towns",
        columns=(
            Column(name="id", type="string", role="unit_key"),
            Column(name="town", type="string", role="other"),
            Column(name="sex", type="categorical", levels=(Level(code="f"), Level(code="m"))),
            Column(name="score", type="integer", role="measure", lower=0, upper=10),
        ),
        privacy=PrivacyUnit(unit_key="id"),
    )
