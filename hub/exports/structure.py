"""The shipped SDMX-ML 3.0 data structure (DSD_LNOB): its code lists, read once from the file.

The XML file is the one source of codes; Python only maps the hub's dims and dataset levels
onto it (`DIM_MAP`), and `check_mapping` (run by the tests) proves every mapped code exists.
"""

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from pathlib import Path

STRUCTURE_FILE = Path(__file__).parent / "structures" / "SAUTI_DSD_LNOB_1.0.0.xml"
AGENCY = "SAUTI"
VERSION = "1.0.0"
DATAFLOW = f"{AGENCY}:DF_LNOB({VERSION})"
MEDIA_TYPE = "application/vnd.sdmx.data+csv; version=2.0.0"

_NS = {
    "mes": "http://www.sdmx.org/resources/sdmxml/schemas/v3_0/message",
    "str": "http://www.sdmx.org/resources/sdmxml/schemas/v3_0/structure",
    "com": "http://www.sdmx.org/resources/sdmxml/schemas/v3_0/common",
}
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

# Dataset column -> (SDMX dimension, {dataset level -> SDMX code}). Dims not listed here
# (district, ...) are not part of the cross-country structure and are refused on export.
DIM_MAP: dict[str, tuple[str, dict[str, str]]] = {
    "group": (
        "POP_GROUP",
        {
            "dalit": "DALIT",
            "disability": "DISABILITY",
            "sex_worker": "SEX_WORKER",
            "third_gender": "THIRD_GENDER",
            "indigenous": "INDIGENOUS",
            "religious_minority": "RELIGIOUS_MINORITY",
            "none": "NONE",
        },
    ),
    "sex": ("SEX", {"female": "F", "male": "M", "third_gender_other": "_O"}),
    "age_band": (
        "AGE",
        {
            "18-24": "Y18T24",
            "25-34": "Y25T34",
            "35-49": "Y35T49",
            "50-64": "Y50T64",
            "65+": "Y_GE65",
        },
    ),
    "education": (
        "EDUCATION",
        {"none": "NONE", "primary": "PRIMARY", "secondary": "SECONDARY", "higher": "HIGHER"},
    ),
}
TOTAL = "_T"


@dataclass(frozen=True)
class Structure:
    """Dimension ids in order (time last), attribute ids, and each code list by its id."""

    dimensions: tuple[str, ...]
    attributes: tuple[str, ...]
    measures: tuple[str, ...]
    codelist_of: dict[str, str]  # component id -> code list id (coded components only)
    codes: dict[str, dict[str, str]]  # code list id -> code -> English name

    def codes_of(self, component: str) -> dict[str, str]:
        return self.codes[self.codelist_of[component]]


def _name(element: ET.Element) -> str:
    for name in element.findall("com:Name", _NS):
        if name.get(_XML_LANG) == "en":
            return name.text or ""
    return ""


@cache
def load_structure() -> Structure:
    root = ET.parse(STRUCTURE_FILE).getroot()  # noqa: S314 - our own shipped file
    codes = {
        cl.get("id", ""): {c.get("id", ""): _name(c) for c in cl.findall("str:Code", _NS)}
        for cl in root.iter(f"{{{_NS['str']}}}Codelist")
    }
    dsd = root.find(".//str:DataStructure", _NS)
    assert dsd is not None
    codelist_of: dict[str, str] = {}

    def ids(path: str) -> tuple[str, ...]:
        found = []
        for comp in dsd.findall(path, _NS):
            cid = comp.get("id", "")
            found.append(cid)
            enum = comp.find("str:LocalRepresentation/str:Enumeration", _NS)
            if enum is not None and enum.text:
                codelist_of[cid] = enum.text.rsplit("=", 1)[1].split(":", 1)[1].split("(")[0]
        return tuple(found)

    dims = ids(".//str:DimensionList/str:Dimension")
    time = ids(".//str:DimensionList/str:TimeDimension")
    return Structure(
        dimensions=dims + time,
        attributes=ids(".//str:AttributeList/str:Attribute"),
        measures=ids(".//str:MeasureList/str:Measure"),
        codelist_of=codelist_of,
        codes=codes,
    )


def area_name(m49: str) -> str | None:
    """The English name of a UN M49 area in the structure's code list, if declared."""
    return load_structure().codes_of("REF_AREA").get(m49)


def check_mapping() -> list[str]:
    """Problems in `DIM_MAP` against the file (empty when consistent)."""
    structure = load_structure()
    problems = []
    for column, (dim, levels) in DIM_MAP.items():
        if dim not in structure.dimensions:
            problems.append(f"{column}: dimension {dim} not in the structure")
            continue
        declared = structure.codes_of(dim)
        problems += [
            f"{column}: code {code} not in {dim}"
            for code in (*levels.values(), TOTAL)
            if code not in declared
        ]
    return problems
