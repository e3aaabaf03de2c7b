"""Synthetic LNOB household-survey data and dataset contracts for the three demo CSOs.

Everything here is invented (names, notes, numbers) and generated from a fixed seed, so a
demo run is reproducible. Rates are loosely shaped on published LNOB findings (higher
violence exposure and lower reporting for sex workers and third-gender people, lower
health access for Dalit and disability groups) but are not data about anyone.
"""

from dataclasses import dataclass

import numpy as np
import polars as pl

from contracts.v1 import Column, DatasetContract, Level, PrivacyUnit
from sauti.demo import DEFAULT_ROWS

DATASET = "lnob_household"
CONTRACT_VERSION = 1
DEFAULT_SEED = 20_261_127

# level code -> English label, then the local label by language (ne, bn, sw).
GROUPS: dict[str, dict[str, str]] = {
    "dalit": {"en": "Dalit", "ne": "दलित", "bn": "দলিত", "sw": "Dalit"},
    "disability": {
        "en": "Persons with disabilities",
        "ne": "अपाङ्गता भएका व्यक्ति",
        "bn": "প্রতিবন্ধী ব্যক্তি",
        "sw": "Watu wenye ulemavu",
    },
    "sex_worker": {
        "en": "Sex workers",
        "ne": "यौनकर्मी",
        "bn": "যৌনকর্মী",
        "sw": "Wafanyabiashara ya ngono",
    },
    "third_gender": {
        "en": "Third-gender people",
        "ne": "तेस्रो लिङ्गी",
        "bn": "হিজড়া / তৃতীয় লিঙ্গ",
        "sw": "Watu wa jinsia ya tatu",
    },
    "indigenous": {
        "en": "Indigenous Peoples",
        "ne": "आदिवासी जनजाति",
        "bn": "আদিবাসী",
        "sw": "Jamii za asili",
    },
    "religious_minority": {
        "en": "Religious minority",
        "ne": "धार्मिक अल्पसंख्यक",
        "bn": "ধর্মীয় সংখ্যালঘু",
        "sw": "Walio wachache kidini",
    },
    "none": {
        "en": "None of these",
        "ne": "कुनै पनि होइन",
        "bn": "এর কোনোটিই নয়",
        "sw": "Hakuna kati ya haya",
    },
}
SEXES: dict[str, dict[str, str]] = {
    "female": {"en": "Female", "ne": "महिला", "bn": "নারী", "sw": "Mwanamke"},
    "male": {"en": "Male", "ne": "पुरुष", "bn": "পুরুষ", "sw": "Mwanamume"},
    "third_gender_other": {
        "en": "Third gender / other",
        "ne": "तेस्रो लिङ्ग / अन्य",
        "bn": "তৃতীয় লিঙ্গ / অন্যান্য",
        "sw": "Jinsia ya tatu / nyingine",
    },
}
AGE_BANDS = ("18-24", "25-34", "35-49", "50-64", "65+")
EDUCATION: dict[str, dict[str, str]] = {
    "none": {"en": "No schooling", "ne": "औपचारिक शिक्षा छैन", "bn": "কোনো শিক্ষা নেই", "sw": "Hakuna"},
    "primary": {"en": "Primary", "ne": "प्राथमिक", "bn": "প্রাথমিক", "sw": "Msingi"},
    "secondary": {"en": "Secondary", "ne": "माध्यमिक", "bn": "মাধ্যমিক", "sw": "Sekondari"},
    "higher": {"en": "Higher", "ne": "उच्च शिक्षा", "bn": "উচ্চ শিক্ষা", "sw": "Elimu ya juu"},
}
YES_NO: dict[str, dict[str, str]] = {
    "yes": {"en": "Yes", "ne": "हो", "bn": "হ্যাঁ", "sw": "Ndiyo"},
    "no": {"en": "No", "ne": "होइन", "bn": "না", "sw": "Hapana"},
}
DECLINED = {
    "en": "Declined to answer",
    "ne": "भन्न चाहेनन्",
    "bn": "উত্তর দিতে চাননি",
    "sw": "Alikataa kujibu",
}
NOT_APPLICABLE = {"en": "Not applicable", "ne": "लागू हुँदैन", "bn": "প্রযোজ্য নয়", "sw": "Haihusiki"}


@dataclass(frozen=True)
class Country:
    """One demo CSO: who it is, where, and how its respondents are composed."""

    node_id: str
    organisation: str
    country: str
    language: str
    districts: dict[str, str]  # code -> local label
    # Groups the node's codebook knows, with their share of respondents; a group missing
    # here (Dalit in Kenya) is not a level of its contract at all.
    group_mix: dict[str, float]
    # Multiplies the health-access odds: national service coverage differs.
    health_factor: float
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]


NEPAL = Country(
    node_id="np-dalit-rights",
    organisation="Samata Dalit Rights Forum (fictional)",
    country="524",
    language="ne",
    districts={
        "Kathmandu": "काठमाडौं",
        "Saptari": "सप्तरी",
        "Siraha": "सिराहा",
        "Dhanusha": "धनुषा",
        "Kailali": "कैलाली",
        "Rupandehi": "रुपन्देही",
        "Doti": "डोटी",
        "Bardiya": "बर्दिया",
    },
    group_mix={
        "dalit": 0.56,
        "indigenous": 0.17,
        "religious_minority": 0.05,
        "disability": 0.06,
        "none": 0.157,
        "sex_worker": 0.0015,
        "third_gender": 0.0012,
    },
    health_factor=0.9,
    first_names=("Sita", "Ram", "Kamala", "Bishnu", "Maya", "Hari", "Sunita", "Dil", "Gita"),
    last_names=("Pariyar", "Bishwakarma", "Nepali", "Sarki", "Tharu", "Magar", "Ram", "Damai"),
)
BANGLADESH = Country(
    node_id="bd-sex-worker-network",
    organisation="Durjoy Network of Sex Workers and Hijra (fictional)",
    country="050",
    language="bn",
    districts={
        "Dhaka": "ঢাকা",
        "Chattogram": "চট্টগ্রাম",
        "Khulna": "খুলনা",
        "Rajshahi": "রাজশাহী",
        "Sylhet": "সিলেট",
        "Tangail": "টাঙ্গাইল",
        "Faridpur": "ফরিদপুর",
        "Mymensingh": "ময়মনসিংহ",
    },
    group_mix={
        "sex_worker": 0.48,
        "third_gender": 0.24,
        "religious_minority": 0.09,
        "disability": 0.04,
        "none": 0.147,
        "dalit": 0.0018,
        "indigenous": 0.0012,
    },
    health_factor=1.0,
    first_names=("Rina", "Shirin", "Joya", "Mousumi", "Rahim", "Puja", "Anwar", "Laboni"),
    last_names=("Akter", "Begum", "Khatun", "Das", "Sarkar", "Hossain", "Roy", "Mondal"),
)
KENYA = Country(
    node_id="ke-disability-federation",
    organisation="Umoja Federation of Persons with Disabilities (fictional)",
    country="404",
    language="sw",
    districts={
        "Nairobi": "Nairobi",
        "Mombasa": "Mombasa",
        "Kisumu": "Kisumu",
        "Nakuru": "Nakuru",
        "Turkana": "Turkana",
        "Kakamega": "Kakamega",
        "Machakos": "Machakos",
        "Garissa": "Garissa",
    },
    group_mix={
        "disability": 0.6,
        "indigenous": 0.1,
        "religious_minority": 0.05,
        "none": 0.2475,
        "sex_worker": 0.0015,
        "third_gender": 0.0012,
    },
    health_factor=1.1,
    first_names=("Wanjiru", "Otieno", "Akinyi", "Kamau", "Chebet", "Mwangi", "Auma", "Njeri"),
    last_names=("Ochieng", "Mutua", "Kiprono", "Wambui", "Odhiambo", "Njoroge", "Ali", "Barasa"),
)
COUNTRIES: tuple[Country, ...] = (NEPAL, BANGLADESH, KENYA)

# Per group: P(violence yes), P(reported | violence yes), P(health access), P(female).
GROUP_RATES: dict[str, tuple[float, float, float, float]] = {
    "dalit": (0.24, 0.22, 0.56, 0.52),
    "disability": (0.22, 0.18, 0.50, 0.53),
    "sex_worker": (0.46, 0.12, 0.60, 0.82),
    "third_gender": (0.52, 0.10, 0.48, 0.05),
    "indigenous": (0.19, 0.25, 0.62, 0.51),
    "religious_minority": (0.17, 0.28, 0.70, 0.50),
    "none": (0.10, 0.38, 0.82, 0.51),
}
NOTES = (
    "Clinic is far; transport costs too much.",
    "Was asked for a bribe at the health post.",
    "Community health volunteer visits sometimes.",
    "Would like information in the local language.",
    "Afraid to report to police.",
    "Lost daily income during the lean season.",
    "Ramp missing at the ward office.",
    "No ID card, so could not register for the allowance.",
)


@dataclass(frozen=True)
class DemoNode:
    """One demo node's identity, its published contract and its raw (synthetic) records."""

    node_id: str
    organisation: str
    country: str
    contract: DatasetContract
    frame: pl.DataFrame


def _levels(labels: dict[str, dict[str, str]], language: str) -> tuple[Level, ...]:
    return tuple(
        Level(code=code, labels={"en": text["en"], language: text[language]})
        for code, text in labels.items()
    )


def make_contract(country: Country) -> DatasetContract:
    """The dataset contract (codebook) this country's node publishes; levels are public."""
    lang = country.language
    plain = {code: {"en": code, lang: code} for code in AGE_BANDS}
    violence = {**YES_NO, "declined": DECLINED}
    reported = {**YES_NO, "not_applicable": NOT_APPLICABLE}
    districts = {code: {"en": code, lang: local} for code, local in country.districts.items()}
    return DatasetContract(
        name=DATASET,
        version=CONTRACT_VERSION,
        title="LNOB basic-services household survey",
        description=f"Synthetic demo data of {country.organisation}.",
        language="en",
        columns=(
            Column(name="respondent_id", type="integer", role="unit_key", nullable=False),
            Column(name="respondent_name", type="string", role="identifier"),
            Column(
                name="group",
                type="categorical",
                title="Population group",
                levels=_levels(
                    {code: text for code, text in GROUPS.items() if code in country.group_mix},
                    lang,
                ),
                nullable=False,
            ),
            Column(name="sex", type="categorical", title="Sex", levels=_levels(SEXES, lang)),
            Column(name="age_band", type="categorical", title="Age", levels=_levels(plain, lang)),
            Column(
                name="district",
                type="categorical",
                title="District",
                levels=_levels(districts, lang),
            ),
            Column(
                name="education",
                type="categorical",
                title="Highest education completed",
                levels=_levels(EDUCATION, lang),
            ),
            Column(
                name="violence_12m",
                type="categorical",
                title="Experienced violence or harassment in the last 12 months",
                levels=_levels(violence, lang),
            ),
            Column(
                name="reported_violence",
                type="categorical",
                title="Reported the violence to any authority",
                levels=_levels(reported, lang),
            ),
            Column(
                name="health_access",
                type="categorical",
                title="Could get health services when needed",
                levels=_levels(YES_NO, lang),
            ),
            Column(
                name="satisfaction",
                type="integer",
                role="measure",
                title="Satisfaction with local services (1-5)",
                lower=1,
                upper=5,
            ),
            Column(name="notes", type="string", role="free_text", title="Enumerator notes"),
        ),
        privacy=PrivacyUnit(unit_key="respondent_id", max_contributions=1),
    )


def _pick(rng: np.random.Generator, codes: list[str], p: list[float], size: int) -> np.ndarray:
    weights = np.asarray(p, dtype=float)
    return rng.choice(np.asarray(codes, dtype=object), size=size, p=weights / weights.sum())


def _strings(values: np.ndarray) -> pl.Series:
    return pl.Series(values.tolist(), dtype=pl.String)


def make_frame(country: Country, *, rows: int, rng: np.random.Generator) -> pl.DataFrame:
    """`rows` synthetic respondents of one country, one row each."""
    groups = _pick(rng, list(country.group_mix), list(country.group_mix.values()), rows)
    rates = np.array([GROUP_RATES[g] for g in groups])
    p_violence, p_report, p_health, p_female = rates.T

    # Third-gender respondents mostly identify as third gender; others rarely do.
    u = rng.random(rows)
    p_other = np.where(groups == "third_gender", 0.85, np.where(groups == "sex_worker", 0.1, 0.005))
    sex = np.where(
        u < p_other, "third_gender_other", np.where(u < p_other + p_female, "female", "male")
    )

    age_band = _pick(rng, list(AGE_BANDS), [0.18, 0.27, 0.29, 0.17, 0.09], rows)
    district = _pick(rng, list(country.districts), [1.0] * len(country.districts), rows)

    # Marginalised groups and women have less schooling on average.
    disadvantage = np.where(groups == "none", 0.0, 0.6) + np.where(sex == "female", 0.3, 0.0)
    schooling = rng.normal(1.6 - disadvantage, 0.9)
    education = np.array(["none", "primary", "secondary", "higher"], dtype=object)[
        np.clip(np.round(schooling), 0, 3).astype(int)
    ]

    u = rng.random(rows)
    declined = 0.05
    violence = np.where(u < declined, "declined", np.where(u < declined + p_violence, "yes", "no"))
    reported = np.where(
        violence == "yes",
        np.where(rng.random(rows) < p_report, "yes", "no"),
        "not_applicable",
    )

    odds = p_health / (1 - p_health) * country.health_factor
    health = np.where(rng.random(rows) < odds / (1 + odds), "yes", "no").astype(object)
    health[rng.random(rows) < 0.02] = None  # a few skipped answers

    base = np.where(health == "yes", 3.4, 2.3) - 0.3 * (violence == "yes")
    satisfaction = np.clip(np.round(rng.normal(base, 0.9)), 1, 5).astype(np.int64)

    first = _pick(rng, list(country.first_names), [1.0] * len(country.first_names), rows)
    last = _pick(rng, list(country.last_names), [1.0] * len(country.last_names), rows)
    notes = _pick(rng, list(NOTES), [1.0] * len(NOTES), rows).astype(object)
    notes[rng.random(rows) < 0.7] = None

    # Respondent ids are unique per node and never overlap between nodes.
    first_id = int(country.country) * 1_000_000 + 1
    return pl.DataFrame(
        {
            "respondent_id": pl.Series(np.arange(first_id, first_id + rows), dtype=pl.Int64),
            "respondent_name": pl.Series(
                [f"{a} {b}" for a, b in zip(first, last, strict=True)], dtype=pl.String
            ),
            "group": _strings(groups),
            "sex": _strings(sex),
            "age_band": _strings(age_band),
            "district": _strings(district),
            "education": _strings(education),
            "violence_12m": _strings(violence),
            "reported_violence": _strings(reported),
            "health_access": _strings(health),
            "satisfaction": pl.Series(satisfaction, dtype=pl.Int64),
            "notes": _strings(notes),
        }
    )


def demo_nodes(*, rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> list[DemoNode]:
    """The three demo nodes with `rows` respondents each, identical for the same seed."""
    rng = np.random.default_rng(seed)
    return [
        DemoNode(
            node_id=country.node_id,
            organisation=country.organisation,
            country=country.country,
            contract=make_contract(country),
            frame=make_frame(country, rows=rows, rng=rng),
        )
        for country in COUNTRIES
    ]
