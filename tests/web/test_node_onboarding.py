"""A steward on a freshly initialised node brings data in through the pages alone: the
overview points to the upload; a refused file or field is named beside its field with what
was typed kept, translated, nothing stored; a respondent planted in the export never reaches
anything the node publishes, sends or logs.
"""

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from node.app import create_app
from node.audit import service as audit
from node.auth import service as auth
from node.datasets import service as datasets
from node.datasets import store
from node.db import dispose_engines
from node.home import init_home
from node.settings import NodeSettings
from tests.node import survey_exports as se
from tests.web.node_web_support import PASSWORD, USERNAME, WebClient, web_client

PLANTED = (se.CANARY_COMMENT, se.CANARY_NAME, str(se.CANARY_INCOME))


def fresh_node(root: Path, **overrides: Any) -> tuple[NodeSettings, FastAPI]:
    """What `sauti node init` and `sauti node steward add` leave: no dataset, no agreement."""
    home = root / "home"
    init_home(home, name="Dalit Women Forum", country="524")
    settings = NodeSettings(home=home, database_url=f"sqlite:///{root}/node.sqlite", **overrides)
    auth.create_account(settings=settings, username=USERNAME, password=PASSWORD)
    return settings, create_app(settings)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[NodeSettings, WebClient]]:
    settings, app = fresh_node(tmp_path)
    with web_client(app) as client:
        assert client.login().status_code == 303
        yield settings, client
    dispose_engines()


@pytest.fixture
def scorecard(tmp_path: Path) -> tuple[se.Survey, Path, Path]:
    form = se.scorecard_form(tmp_path / "scorecard.xlsx")
    survey = se.generate(se.read_form(form), submissions=60, seed=11)
    export = tmp_path / "scorecard.csv"
    se.kobo_csv(survey, export)
    assert se.CANARY_COMMENT in export.read_text(encoding="utf-8")
    return survey, form, export


def _staged(settings: NodeSettings) -> list[Path]:
    folder = store.root(settings.home) / ".uploads"
    return list(folder.iterdir()) if folder.exists() else []


def _fields(html: str) -> dict[str, str]:
    """The review form's inputs as a browser sends them back."""
    fields = {}
    for name, value in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html):
        fields[name] = value.replace("&amp;", "&").replace("&#34;", '"').replace("&#39;", "'")
    for select in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', select[1])
        if chosen:
            fields[select[0]] = chosen.group(1)
    return fields


def _draft(client: WebClient, export: tuple[str, bytes], **data: str) -> str:
    token = client.csrf("/steward/datasets")
    page = client.post(
        "/steward/datasets/draft",
        data={"csrf_token": token, **data},
        files={"upload": (*export, "application/octet-stream")},
    )
    assert page.status_code == 422, page.text[-600:]
    return page.text


def test_a_fresh_node_points_the_steward_to_the_upload(
    fresh: tuple[NodeSettings, WebClient],
) -> None:
    _settings, client = fresh
    overview = client.get("/steward/")
    assert "Bring in your first survey" in overview.text
    assert 'href="/steward/datasets#start"' in overview.text
    assert "sauti node" not in overview.text  # no terminal needed
    listing = client.get("/steward/datasets")
    assert 'id="start"' in listing.text
    assert 'name="codebook"' in listing.text  # the XLSForm goes with the export


RAGGED_ROW = f"7,{se.CANARY_NAME},3,4,5"
BAD_UPLOADS = [
    # (case, file name, bytes, field, words of the rule, status)
    (
        "wrong kind",
        "notes.pdf",
        b"%PDF-1.7\n" + se.CANARY_NAME.encode(),
        "upload",
        "survey export",
        422,
    ),
    (
        "disguised",
        "export.xlsx",
        f"id,name\n1,{se.CANARY_NAME}\n".encode(),
        "upload",
        "must match its name",
        422,
    ),
    (
        "broken encoding",
        "export.csv",
        # UTF-8 for the first 64 KB the encoding is guessed from, then a byte UTF-8 has not.
        b"id,name\n" + b"1,ok\n" * 20_000 + b"2," + se.CANARY_NAME.encode() + b"\xff\n3,x\n",
        "upload",
        "valid utf-8 text at byte",
        422,
    ),
    (
        "ragged",
        "export.csv",
        ("id,name,a,b\n1,x,1,2\n2,y,3,4\n" + RAGGED_ROW + "\n8,z,1,2\n").encode(),
        "upload",
        "as many fields as the header (4)",
        422,
    ),
    (
        "legacy excel",
        "old.xls",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64,
        "upload",
        ".xls",
        422,
    ),
    ("empty", "export.csv", b"", "upload", "Choose the export file", 422),
]


@pytest.mark.parametrize(
    ("case", "filename", "content", "field", "rule", "status"),
    BAD_UPLOADS,
    ids=[c[0] for c in BAD_UPLOADS],
)
def test_a_bad_upload_is_named_beside_its_field_and_stores_nothing(
    fresh: tuple[NodeSettings, WebClient],
    case: str,
    filename: str,
    content: bytes,
    field: str,
    rule: str,
    status: int,
) -> None:
    settings, client = fresh
    token = client.csrf("/steward/datasets")
    page = client.post(
        "/steward/datasets/draft",
        data={"csrf_token": token, "dataset": "scorecard", "title": "Scorecard 2026"},
        files={"upload": (filename, content, "application/octet-stream")},
    )
    assert page.status_code == status, (case, page.text[-800:])
    html = page.text
    assert rule in html, case
    assert 'class="error-summary" role="alert" tabindex="-1" autofocus' in html
    assert 'href="#draft-file"' in html  # the summary leads to the field
    assert 'id="draft-file-error"' in html
    assert re.search(
        r'id="draft-file"[^>]*aria-invalid="true" aria-describedby="draft-file-error"', html
    )
    # What was typed is kept; the file is not (a browser cannot be given one back).
    assert 'value="scorecard"' in html
    assert 'value="Scorecard 2026"' in html
    for planted in PLANTED:
        assert planted not in html, case
    assert _staged(settings) == []
    assert not (store.root(settings.home) / "scorecard").exists()
    if case == "ragged":
        assert "ragged_row" in html  # the report names the rule and the rows
        assert re.search(r"<td>1: 3 \(file lines 4\)</td>", html), html[-1500:]


def test_too_big_and_bad_name_are_refused_beside_their_fields_in_nepali(tmp_path: Path) -> None:
    settings, app = fresh_node(tmp_path, import_max_bytes=2000)
    with web_client(app) as client:
        assert client.login().status_code == 303
        client.client.cookies.set("sauti_lang", "ne")
        token = client.csrf("/steward/datasets")
        big = client.post(
            "/steward/datasets/draft",
            data={"csrf_token": token, "dataset": "scorecard", "title": "सर्वेक्षण"},
            files={"upload": ("big.csv", b"a,b\n" + b"1,2\n" * 5000, "text/csv")},
        )
        assert big.status_code == 413
        assert "बढीमा ०.००२ MB" in big.text or "बढीमा 0.002 MB" in big.text
        assert 'value="सर्वेक्षण"' in big.text  # typed before the file: kept
        assert 'lang="ne"' in big.text
        named = client.post(
            "/steward/datasets/draft",
            data={"csrf_token": token, "dataset": "Score Card", "title": "t"},
            files={"upload": ("s.csv", b"id,a\n1,2\n", "text/csv")},
        )
        assert named.status_code == 422
        assert "डाटासेटको नाममा a-z, 0-9 र _ मात्र हुन्छन्" in named.text
        assert re.search(
            r'id="draft-dataset"[^>]*value="Score Card" aria-invalid="true"', named.text
        )
        assert 'href="#draft-dataset"' in named.text
        assert _staged(settings) == []
    dispose_engines()


def test_review_errors_stay_beside_their_fields_as_typed_and_publish_nothing(
    fresh: tuple[NodeSettings, WebClient], tmp_path: Path
) -> None:
    settings, client = fresh
    rows = "\n".join(f"r{i},{1000 + (i * 37) % 9000},{('a', 'b')[i % 2]}" for i in range(300))
    export = tmp_path / "incomes.csv"
    export.write_text("respondent_id,income,kind\n" + rows + "\n", encoding="utf-8")
    token = client.csrf("/steward/datasets")
    page = client.post(
        "/steward/datasets/draft",
        data={"csrf_token": token, "dataset": "incomes"},
        files={"upload": ("incomes.csv", export.read_bytes(), "text/csv")},
    )
    assert page.status_code == 200, page.text[-800:]
    fields = _fields(page.text)
    # The other choice than the draft's for values outside the bounds: kept when refused.
    drafted = re.search(r'<option value="(clip|refuse)" selected>', page.text)
    chosen = "refuse" if drafted is not None and drafted.group(1) == "clip" else "clip"
    typed = {
        **fields,
        "lower__income": "ten",
        "upper__income": "5000",
        "policy__income": chosen,
        "version": "first",
        "title": "Household incomes",
        "action": "publish",
    }
    refused = client.post("/steward/datasets/draft/review", data=typed)
    assert refused.status_code == 422
    html = refused.text
    assert "Nothing was published" in html
    assert 'href="#lower-income"' in html
    assert 'href="#review-version"' in html
    assert re.search(r'id="lower-income"[^>]*value="ten" aria-invalid="true"', html)
    assert re.search(r'id="review-version"[^>]*value="first" aria-invalid="true"', html)
    assert "Write a number, like 0 or 12.5." in html
    assert 'value="Household incomes"' in html
    assert f'<option value="{chosen}" selected>' in html
    assert store.contract_versions(settings.home, "incomes") == []
    # Bounds the wrong way round: named at the lower bound, in Swahili.
    client.client.cookies.set("sauti_lang", "sw")
    again = client.post(
        "/steward/datasets/draft/review",
        data={**typed, "lower__income": "9000", "upper__income": "10", "version": "1"},
    )
    assert again.status_code == 422
    assert "Mpaka wa chini usiwe juu ya mpaka wa juu." in again.text
    client.client.cookies.set("sauti_lang", "en")
    fixed = client.post(
        "/steward/datasets/draft/review",
        data={**typed, "lower__income": "0", "upper__income": "10000", "version": "1"},
    )
    assert fixed.status_code == 303
    income = datasets.get_contract(home=settings.home, name="incomes").column("income")
    assert income is not None
    assert (income.lower, income.upper) == (0, 10000)
    assert income.bounds_policy == chosen


def test_planted_respondent_never_leaves_the_browser_onboarding(
    fresh: tuple[NodeSettings, WebClient], scorecard, caplog
) -> None:
    """Upload the export and its XLSForm, review, publish and import in the pages; then read
    everything the node publishes, shows or sends: no planted value, anywhere."""
    caplog.set_level(logging.DEBUG)
    settings, client = fresh
    survey, form, export = scorecard
    token = client.csrf("/steward/datasets")
    seen = []
    page = client.post(
        "/steward/datasets/draft",
        data={"csrf_token": token, "dataset": "scorecard", "title": "Disability scorecard"},
        files={
            "codebook": ("scorecard.xlsx", form.read_bytes(), "application/octet-stream"),
            "upload": ("scorecard.csv", export.read_bytes(), "text/csv"),
        },
    )
    assert page.status_code == 200, page.text[-800:]
    seen.append(page.text)
    assert "(Yes)" in page.text or "(No)" in page.text  # levels with their form labels
    fields = _fields(page.text)
    published = client.post(
        "/steward/datasets/draft/review", data={**fields, "action": "publish_import"}
    )
    assert published.status_code == 200, published.text[-800:]
    assert "Imported." in published.text
    seen.append(published.text)
    assert _staged(settings) == []
    contract = datasets.get_contract(home=settings.home, name="scorecard")
    assert contract.column("comment").role == "free_text"  # type: ignore[union-attr]
    assert contract.column("resp_name").role == "identifier"  # type: ignore[union-attr]
    assert [v.rows for v in datasets.list_versions(home=settings.home, name="scorecard")] == [
        len(survey.submissions)
    ]
    # What leaves the node: the contract (the hub and analysts read it), its Table Schema,
    # the public info, every page, the audit chain and its export, the logs.
    seen.append(json.dumps(contract.model_dump(mode="json"), ensure_ascii=False))
    seen.append(json.dumps(contract.to_table_schema(), ensure_ascii=False))
    for path in (
        "/v1/info",
        "/steward/",
        "/steward/datasets",
        "/steward/datasets/scorecard/contracts/1",
        "/steward/datasets/scorecard/versions/1",
        "/steward/requests",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        seen.append(response.text)
    entries = audit.entries(database_url=settings.db_url)
    seen.append(json.dumps([e.model_dump(mode="json") for e in entries], ensure_ascii=False))
    seen.append(caplog.text)
    for planted in PLANTED:
        assert not any(planted in text for text in seen), planted
    names = {v for s in survey.submissions for k, v in s.values.items() if k == "resp_name" and v}
    assert not any(name in text for name in names for text in seen[2:])


def test_import_form_refusals_and_a_taken_version_are_named_beside_their_fields(
    fresh: tuple[NodeSettings, WebClient], tmp_path: Path
) -> None:
    settings, client = fresh
    export = tmp_path / "people.csv"
    export.write_text(
        "respondent_id,age\n" + "".join(f"r{i},{20 + i % 50}\n" for i in range(200)),
        encoding="utf-8",
    )
    token = client.csrf("/steward/datasets")
    page = client.post(
        "/steward/datasets/draft",
        data={"csrf_token": token, "dataset": "people"},
        files={"upload": ("people.csv", export.read_bytes(), "text/csv")},
    )
    fields = {**_fields(page.text), "lower__age": "0", "upper__age": "120"}
    assert (
        client.post(
            "/steward/datasets/draft/review", data={**fields, "action": "publish"}
        ).status_code
        == 303
    )
    # The import form of an existing dataset: a ragged file is read and checked against the
    # contract, so the validation report names the rule and rows; nothing is imported.
    ragged = client.post(
        "/steward/datasets/import",
        data={"csrf_token": token, "dataset": "people", "mode": "import"},
        files={"upload": ("people.csv", b"respondent_id,age\nr1,20\nr2\nr3,30\n", "text/csv")},
    )
    assert ragged.status_code == 422
    assert "<code>ragged_row</code>" in ragged.text
    # A file that is no export is refused before it is read, beside the file field.
    refused = client.post(
        "/steward/datasets/import",
        data={"csrf_token": token, "dataset": "people", "mode": "import", "keep_first": "yes"},
        files={"upload": ("minutes.docx", b"PK\x03\x04 not an export", "text/csv")},
    )
    assert refused.status_code == 422
    assert re.search(r'id="import-file"[^>]*aria-invalid="true"', refused.text)
    assert 'href="#import-file"' in refused.text
    assert re.search(r'id="import-keep-first"[^>]*checked', refused.text)  # kept as ticked
    assert datasets.list_versions(home=settings.home, name="people") == []
    assert _staged(settings) == []
    # Version 1 again with other bounds: it is taken, so the error is at the version field.
    page = client.post(
        "/steward/datasets/draft",
        data={"csrf_token": token, "dataset": "people"},
        files={"upload": ("people.csv", export.read_bytes(), "text/csv")},
    )
    fields = {**_fields(page.text), "lower__age": "0", "upper__age": "99", "version": "1"}
    taken = client.post("/steward/datasets/draft/review", data={**fields, "action": "publish"})
    assert taken.status_code == 409
    assert re.search(r'id="review-version"[^>]*value="1" aria-invalid="true"', taken.text)
    assert "already published with another text" in taken.text
    age = datasets.get_contract(home=settings.home, name="people").column("age")
    assert age is not None
    assert age.upper == 120  # the published version is unchanged
