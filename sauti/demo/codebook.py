"""The demo CSOs and the codebook (dataset contract) each publishes: public metadata only.

Kept apart from the synthetic records (sauti.demo.data, numpy and polars), so the hub-only
install checks assessment templates against these contracts without either library.
"""

from dataclasses import dataclass

from contracts.v1 import Column, DatasetContract, Level, PrivacyUnit

DATASET = "lnob_household"
CONTRACT_VERSION = 1

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
