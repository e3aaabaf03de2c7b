"""The printable MoU: one agreement version as an HTML page or a PDF a ministry can file."""

import warnings
from datetime import UTC, datetime
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape

from contracts.agreement_rules import plain_language
from hub.agreements.schemas import AgreementRead

STATUS_TEXT = {
    "draft": "Draft — not yet proposed for signature",
    "proposed": "Proposed — awaiting signatures",
    "active": "In force",
    "not_yet_valid": "Signed — not yet in force",
    "expired": "Expired",
    "suspended": "Suspended by the secretariat",
    "revoked": "Revoked",
    "superseded": "Superseded by a later version",
}


@cache
def _environment() -> Environment:
    # Templates live in the package, so the document renders the same wherever the hub runs.
    return Environment(
        loader=PackageLoader("hub.agreements", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(read: AgreementRead, *, organisations: dict[str, str] | None = None) -> str:
    """The MoU as a self-contained HTML page (no external assets).

    `organisations` names each signer (hub or node id) for the signature block.
    """
    terms = read.agreement.terms
    names = organisations or {}
    for party in terms.parties:
        if party.node_id is not None:
            names.setdefault(party.node_id, party.organisation)
    signed = {s.signer: s for s in read.signers}
    signatories = [
        {
            "id": signer,
            "organisation": names.get(signer, signer),
            "signature": signed.get(signer),
        }
        for signer in (terms.hub_id, *terms.node_ids)
    ]
    return (
        _environment()
        .get_template("mou.html")
        .render(
            read=read,
            terms=terms,
            sections=plain_language(terms),
            status_text=STATUS_TEXT.get(read.status, read.status),
            signatories=signatories,
            generated_at=datetime.now(UTC).strftime("%d %B %Y, %H:%M UTC"),
        )
    )


def render_pdf(read: AgreementRead, *, organisations: dict[str, str] | None = None) -> bytes:
    """The same document as PDF (WeasyPrint)."""
    # Imported here: WeasyPrint loads Pango at import, which only this function needs. On
    # systems without libharfbuzz-subset it warns that a future version will need it; this
    # version renders fine (fonts are embedded whole), so that one warning is not an error.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="HarfBuzz-Subset", category=DeprecationWarning)
        from weasyprint import HTML  # noqa: PLC0415

    pdf = HTML(string=render_html(read, organisations=organisations)).write_pdf()
    assert pdf is not None
    return bytes(pdf)
