"""The steward's browser import: draft a contract from an upload, review it column by column,
publish and import, with what the command line offers (format, XLSForm, repeat or sheet).

The same service code as `sauti node contract draft` and `sauti node import`; uploads stream
to a staging folder under the import limit, CSRF first, and never leave raw values on a page
the steward did not ask for.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.harmonisation.service import signed_module
from node.app import create_app
from node.audit import service as audit
from node.datasets import service as datasets
from node.datasets import store, uploads
from node.db import dispose_engines
from node.harmonisation import service as harmonisation
from tests import partnership_surveys as ps
from tests.node import survey_exports as se
from tests.node.conftest import Node
from tests.web.node_web_support import WebClient, csrf_of, steward_node, web_client


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    made = steward_node(tmp_path / "node", f"sqlite:///{tmp_path}/node.sqlite")
    yield made
    dispose_engines()


@pytest.fixture
def steward(node: Node) -> Iterator[WebClient]:
    with web_client(node.client.app) as client:
        assert client.login().status_code == 303
        yield client


@pytest.fixture
def scorecard(tmp_path: Path) -> tuple[se.Survey, Path, Path, Path]:
    form = se.scorecard_form(tmp_path / "scorecard.xlsx")
    survey = se.generate(se.read_form(form), submissions=60, seed=3)
    csv_path = tmp_path / "scorecard.csv"
    se.kobo_csv(survey, csv_path)
    xlsx_path = tmp_path / "scorecard-kobo.xlsx"
    se.kobo_xlsx(survey, xlsx_path)
    return survey, form, csv_path, xlsx_path


def _staged(node: Node) -> list[Path]:
    folder = store.root(node.home) / ".uploads"
    return list(folder.iterdir()) if folder.exists() else []


def _fields(html: str) -> dict[str, str]:
    """The review form's text and hidden inputs as a browser would send them back."""
    fields = {}
    for name, value in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html):
        fields[name] = value.replace("&amp;", "&").replace("&#34;", '"').replace("&#39;", "'")
    for select in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', select[1])
        if chosen:
            fields[select[0]] = chosen.group(1)
    return fields


def test_draft_review_show_levels_name_them_publish_and_import(
    node: Node, steward: WebClient, scorecard
) -> None:
    survey, _form, csv_path, _xlsx = scorecard
    token = steward.csrf("/steward/datasets")
    page = steward.post(
        "/steward/datasets/draft",
        data={"csrf_token": token, "dataset": "scorecard", "title": "Disability scorecard"},
        files={"upload": ("scorecard.csv", csv_path.read_bytes(), "text/csv")},
    )
    assert page.status_code == 200, page.text[-500:]
    html = page.text
    assert "Review the proposed contract for scorecard" in html
    assert 'value="show:ward"' in html  # a candidate: few short values, shown only on request
    for planted in (se.CANARY_COMMENT, se.CANARY_NAME, "Gatwekera", "Soweto East"):
        assert planted not in html
    fields = _fields(html)
    assert fields["format"] == ""  # recognised as Kobo from its columns, not asked
    shown = steward.post("/steward/datasets/draft/review", data={**fields, "action": "show:ward"})
    assert shown.status_code == 200
    assert "Gatwekera" in shown.text  # the steward asked to see this column's values
    assert se.CANARY_COMMENT not in shown.text
    fields = _fields(shown.text)
    for forged in ("", "forged-token"):
        refused = steward.post(
            "/steward/datasets/draft/review",
            data={**fields, "csrf_token": forged, "action": "discard"},
        )
        assert refused.status_code == 403
    assert len(_staged(node)) == 1  # a forged post changed nothing
    levels = "Gatwekera, Kianda, Makina, Soweto East"
    published = steward.post(
        "/steward/datasets/draft/review",
        data={**fields, "levels__ward": levels, "action": "publish_import"},
    )
    assert published.status_code == 200, published.text[-800:]
    assert "Imported." in published.text
    contract = datasets.get_contract(home=node.home, name="scorecard")
    ward = contract.column("ward")
    assert ward is not None
    assert ward.level_codes == ("Gatwekera", "Kianda", "Makina", "Soweto East")
    assert contract.title == "Disability scorecard"
    assert contract.privacy.unit_key == "_uuid"
    assert contract.column("resp_name").role == "identifier"  # type: ignore[union-attr]
    assert contract.column("comment").role == "free_text"  # type: ignore[union-attr]
    versions = datasets.list_versions(home=node.home, name="scorecard")
    assert [v.rows for v in versions] == [len(survey.submissions)]
    assert _staged(node) == []  # the upload is gone once imported
    # The staged file went with the import: the same form again finds nothing.
    again = steward.post("/steward/datasets/draft/review", data={**fields, "action": "review"})
    assert again.status_code == 410


def test_codebook_and_repeat_sheet_through_the_import_form(
    node: Node, steward: WebClient, scorecard
) -> None:
    _survey, form, _csv, xlsx_path = scorecard
    token = steward.csrf("/steward/datasets")
    page = steward.post(
        "/steward/datasets/draft",
        data={"csrf_token": token, "dataset": "scores", "table": "indicator_scores"},
        files={
            "codebook": ("scorecard.xlsx", form.read_bytes(), "application/octet-stream"),
            "upload": ("export.xlsx", xlsx_path.read_bytes(), "application/octet-stream"),
        },
    )
    assert page.status_code == 200, page.text[-500:]
    assert "_submission__uuid" in page.text  # the privacy unit is the submission
    fields = _fields(page.text)
    assert fields["table"] == "indicator_scores"
    published = steward.post("/steward/datasets/draft/review", data={**fields, "action": "publish"})
    assert published.status_code == 303
    contract = datasets.get_contract(home=node.home, name="scores")
    assert contract.privacy.unit_key == "_submission__uuid"
    assert contract.column("indicator").level_codes == (  # type: ignore[union-attr]
        "ramps",
        "sign_language",
        "braille",
        "staff_training",
    )
    checked = steward.post(
        "/steward/datasets/import",
        data={
            "csrf_token": token,
            "dataset": "scores",
            "mode": "check",
            "table": "indicator_scores",
        },
        files={
            "codebook": ("scorecard.xlsx", form.read_bytes(), "application/octet-stream"),
            "upload": ("export.xlsx", xlsx_path.read_bytes(), "application/octet-stream"),
        },
    )
    assert checked.status_code == 200, checked.text[-800:]
    assert "The file satisfies the contract" in checked.text
    assert _staged(node) == []


def test_uploads_stream_under_the_limit_and_need_csrf_first(tmp_path: Path, scorecard) -> None:
    node = steward_node(tmp_path / "n", f"sqlite:///{tmp_path}/n.sqlite")
    small = create_app(node.settings.model_copy(update={"import_max_bytes": 2000}))
    _survey, _form, csv_path, _xlsx = scorecard
    with web_client(small) as steward:
        assert steward.login().status_code == 303
        token = steward.csrf("/steward/datasets")
        big = steward.post(
            "/steward/datasets/draft",
            data={"csrf_token": token, "dataset": "x"},
            files={"upload": ("big.csv", b"a,b\n" + b"1,2\n" * 5000, "text/csv")},
        )
        assert big.status_code == 413
        forged = steward.post(
            "/steward/datasets/draft",
            data={"csrf_token": "forged", "dataset": "x"},
            files={"upload": ("s.csv", csv_path.read_bytes()[:1500], "text/csv")},
        )
        assert forged.status_code == 403
        assert _staged(node) == []
        expired = steward.post(
            "/steward/datasets/draft/review",
            data={"csrf_token": token, "token": "A" * 22, "dataset": "x", "action": "review"},
        )
        assert expired.status_code == 410
    dispose_engines()


def test_expired_uploads_are_swept(tmp_path: Path) -> None:
    token, folder = uploads.new_folder(tmp_path)
    (folder / "export").mkdir()
    (folder / "export" / "x.csv").write_text("a\n1\n")
    assert uploads.find(tmp_path, token).filename == "x.csv"
    uploads.sweep(tmp_path, now=folder.stat().st_mtime + uploads.STAGED_FOR + 1)
    assert not folder.exists()


def test_one_contract_for_a_partnership_from_a_module_or_a_partner_file(
    node: Node, steward: WebClient, tmp_path: Path
) -> None:
    signed = tmp_path / "lnob_core.json"
    signed.write_text(
        json.dumps(signed_module(name="lnob_core", version=1, key=node.hub_key).model_dump())
    )
    harmonisation.add_module(home=node.home, path=signed, settings=node.settings)
    export = ps.write_exports(tmp_path / "exports")["bd-swn"]
    listing = steward.get("/steward/datasets")
    assert 'value="lnob_core:1"' in listing.text
    page = steward.post(
        "/steward/datasets/draft",
        data={
            "csrf_token": csrf_of(listing.text),
            "dataset": ps.DATASET,
            "shared_module": "lnob_core:1",
        },
        files={"upload": ("bd.csv", export.read_bytes(), "text/csv")},
    )
    assert page.status_code == 200, page.text[-800:]
    html = page.text
    assert "module lnob_core v1" in html
    assert ps.LEVEL_CANARY not in html  # counted, not shown, until the steward asks
    fields = _fields(html)
    assert fields["shared_module"] == "lnob_core:1"
    assert fields["column__sex"] == "gender"
    assert fields["recode__sex"] == "F:female, M:male"
    assert fields["column__violence_12m"] == "hinsa"
    assert fields["column__admin_area"] == ""  # not collected here
    shown = steward.post(
        "/steward/datasets/draft/review", data={**fields, "action": "show:marginalised_group"}
    )
    assert shown.status_code == 200
    assert ps.LEVEL_CANARY in shown.text  # asked for: the value nobody placed, to this steward
    fields = _fields(shown.text)
    fields["recode__sex"] += ", H:other"
    fields["recode__marginalised_group"] += f", {ps.LEVEL_CANARY}:"
    published = steward.post(
        "/steward/datasets/draft/review", data={**fields, "action": "publish_import"}
    )
    assert published.status_code == 200, published.text[-800:]
    assert "Imported." in published.text
    contract = datasets.get_contract(home=node.home, name=ps.DATASET)
    assert contract.column("marginalised_group").level_codes == ps.MODULE_GROUPS  # type: ignore[union-attr]
    assert not contract.column("admin_area").collected  # type: ignore[union-attr]
    mapping = datasets.get_mapping(home=node.home, name=ps.DATASET)
    assert mapping.columns["sex"].levels == {"F": "female", "M": "male", "H": "other"}
    assert ps.LEVEL_CANARY not in json.dumps(contract.model_dump(mode="json"))
    page = steward.get(f"/steward/datasets/{ps.DATASET}/contracts/1")
    assert "not collected by this survey" in page.text

    # A partner's published contract as the codebook: the same columns, levels and bounds.
    partner = json.dumps(contract.to_table_schema()).encode()
    other = ps.write_exports(tmp_path / "more")["ke-dpo"]
    page = steward.post(
        "/steward/datasets/draft",
        data={"csrf_token": csrf_of(listing.text), "dataset": "kenya_copy"},
        files={
            "upload": ("ke.csv", other.read_bytes(), "text/csv"),
            "partner": ("partner.json", partner, "application/json"),
        },
    )
    assert page.status_code == 200, page.text[-800:]
    assert f"partner contract {ps.DATASET} v1" in page.text
    fields = _fields(page.text)
    assert fields["column__violence_12m"] == ""
    refused = steward.post(
        "/steward/datasets/draft",
        data={"csrf_token": csrf_of(listing.text), "dataset": "x"},
        files={
            "upload": ("ke.csv", other.read_bytes(), "text/csv"),
            "partner": ("notes.json", b'{"hello": 1}', "application/json"),
        },
    )
    assert refused.status_code == 422
    assert "<code>codebook_invalid</code>" in refused.text
    assert len(_staged(node)) == 1  # the draft under review waits; the refused one is gone


def test_dp_estimated_bounds_stay_marked_through_the_review(
    node: Node, steward: WebClient, tmp_path: Path
) -> None:
    rows = "\n".join(f"r{i},{1000 + (i * 37) % 9000}" for i in range(600))
    export = tmp_path / "incomes.csv"
    export.write_text("respondent_id,income\n" + rows + "\n", encoding="utf-8")
    token = steward.csrf("/steward/datasets")
    page = steward.post(
        "/steward/datasets/draft",
        data={"csrf_token": token, "dataset": "incomes"},
        files={"upload": ("incomes.csv", export.read_bytes(), "text/csv")},
    )
    assert page.status_code == 200, page.text[-800:]
    fields = _fields(page.text)
    lower, upper = fields["lower__income"], fields["upper__income"]
    assert fields["estimated__income"] == f"{lower},{upper},0.02"
    # Sent back unchanged, the bounds stay DP-estimated (no new noise is drawn) ...
    again = steward.post("/steward/datasets/draft/review", data={**fields, "action": "review"})
    assert _fields(again.text)["estimated__income"] == f"{lower},{upper},0.02"
    published = steward.post("/steward/datasets/draft/review", data={**fields, "action": "publish"})
    assert published.status_code == 303
    income = datasets.get_contract(home=node.home, name="incomes").column("income")
    assert income is not None
    assert income.bounds_rho == 0.02
    entries = audit.entries(database_url=node.settings.db_url)
    assert entries[-1].action == "contract_published"
    assert entries[-1].details["dp_bounds"] == {"income": 0.02}
    page = steward.get("/steward/datasets/incomes/contracts/1")
    assert "estimated from the data with differential privacy" in page.text
    # ... and bounds the steward changes are theirs: nothing is marked or spent for them.
    changed = steward.post(
        "/steward/datasets/draft",
        data={"csrf_token": token, "dataset": "incomes2"},
        files={"upload": ("incomes.csv", export.read_bytes(), "text/csv")},
    )
    fields = {**_fields(changed.text), "lower__income": "0", "upper__income": "15000"}
    kept = steward.post("/steward/datasets/draft/review", data={**fields, "action": "publish"})
    assert kept.status_code == 303
    own = datasets.get_contract(home=node.home, name="incomes2").column("income")
    assert own is not None
    assert (own.lower, own.upper, own.bounds_rho) == (0, 15000, None)


def test_a_private_bounds_guess_that_fails_once_leaves_no_stale_policy_behind(
    node: Node, steward: WebClient, scorecard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The private guess of income's bounds draws fresh noise on each review: failing on the
    first page (no bounds, the select shows 'refuse') and succeeding on the next, the draft's
    own 'clip' stands, so the planted out-of-range income is clipped, not refused."""
    from node.privacy import bounds  # noqa: PLC0415

    guess: dict[str, tuple[float, float] | None] = {"income": None}
    monkeypatch.setattr(bounds, "propose_bounds", lambda *_a, **_k: guess["income"])
    _survey, _form, csv_path, _xlsx = scorecard
    token = steward.csrf("/steward/datasets")
    page = steward.post(
        "/steward/datasets/draft",
        data={"csrf_token": token, "dataset": "scorecard"},
        files={"upload": ("scorecard.csv", csv_path.read_bytes(), "text/csv")},
    )
    assert page.status_code == 200, page.text[-500:]
    fields = _fields(page.text)
    assert (fields["lower__income"], fields["upper__income"]) == ("", "")
    assert fields["policy__income"] == "refuse"  # the default shown beside no bounds
    guess["income"] = (0.0, 200.0)
    shown = steward.post("/steward/datasets/draft/review", data={**fields, "action": "show:ward"})
    assert shown.status_code == 200
    fields = _fields(shown.text)
    assert (fields["lower__income"], fields["upper__income"], fields["policy__income"]) == (
        "0",
        "200",
        "clip",
    )
    levels = "Gatwekera, Kianda, Makina, Soweto East"
    published = steward.post(
        "/steward/datasets/draft/review",
        data={**fields, "levels__ward": levels, "action": "publish_import"},
    )
    assert published.status_code == 200, published.text[-800:]
    assert "Imported." in published.text
    income = datasets.get_contract(home=node.home, name="scorecard").column("income")
    assert income is not None
    assert (income.lower, income.upper, income.bounds_policy) == (0, 200, "clip")
