"""Publish a round: a fact sheet (HTML/PDF) or a data file (CSV/XLSX/SDMX-CSV), all-or-nothing.

The audience is checked against the round's dissemination level (the most restrictive of
its agreements) before anything is rendered; a PDF is rendered fully in memory first.
"""

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from contracts.v1.agreement import Dissemination
from hub.assessments import comparison
from hub.assessments import service as assessments
from hub.auth.schemas import User
from hub.exports import rounds as exports
from hub.publications.exceptions import RoundNotFinished
from hub.publications.factsheet import check_audience, country_sheet, cross_country_sheet, to_pdf

Format = Literal["html", "pdf", "csv", "xlsx", "sdmx"]
MEDIA_TYPES: dict[str, str] = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "sdmx": "application/vnd.sdmx.data+csv; version=2.0.0; charset=utf-8",
}
SUFFIX = {"html": "html", "pdf": "pdf", "csv": "csv", "xlsx": "xlsx", "sdmx": "sdmx.csv"}


@dataclass(frozen=True)
class Publication:
    content: bytes
    media_type: str
    filename: str
    # Strings shown in English because their translation is missing (a warning).
    missing_translations: tuple[str, ...] = ()


def publish(
    *,
    session: Session,
    round_id: str,
    user: User,
    fmt: Format,
    audience: Dissemination,
    country: str | None = None,
    language: str = "en",
) -> Publication:
    results = assessments.round_results(session=session, round_id=round_id, user=user)
    check_audience(level=results.dissemination, audience=audience)
    template = assessments.get_template(
        session=session, template_id=results.template_id, version=results.template_version
    )
    stem = f"lnob-{results.period}-{country or 'all'}"
    if fmt in ("csv", "xlsx", "sdmx"):
        if not results.complete:
            raise RoundNotFinished()
        if country is not None:
            results = results.model_copy(
                update={
                    "values": tuple(v for v in results.values if v.country == country),
                    "answers": tuple(a for a in results.answers if a.country == country),
                    "countries": (country,),
                }
            )
        if fmt == "csv":
            data = exports.to_csv(results, template).encode()
        elif fmt == "xlsx":
            data = exports.to_xlsx(results, template)
        else:
            data = exports.to_sdmx(results, template).encode()
        return Publication(data, MEDIA_TYPES[fmt], f"{stem}.{SUFFIX[fmt]}")
    if country is None:
        rendered = cross_country_sheet(
            results=results,
            template=template,
            language=language,
            audience=audience,
            embed_fonts=fmt == "pdf",
        )
    else:
        previous_id = assessments.previous_round_id(session=session, round_id=round_id)
        previous = (
            assessments.round_results(session=session, round_id=previous_id, user=user)
            if previous_id is not None
            else None
        )
        rendered = country_sheet(
            results=results,
            template=template,
            country=country,
            language=language,
            audience=audience,
            changes=comparison.compare(results, previous) if previous is not None else (),
            previous_period=previous.period if previous is not None else None,
            embed_fonts=fmt == "pdf",
        )
    content = to_pdf(rendered.html) if fmt == "pdf" else rendered.html.encode()
    return Publication(
        content,
        MEDIA_TYPES[fmt],
        f"{stem}-{language}.{SUFFIX[fmt]}",
        missing_translations=rendered.missing_translations,
    )
