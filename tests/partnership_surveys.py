"""Three CSOs of one partnership, each with its own export, drafting one contract (test data).

All three draft from the shipped `lnob_core` module (or from the contract one of them
publishes) and map their own exports onto it:

- Nepal (`np-dalit`): the module's column names, but its own code `dalit` for the group, only
  `female`/`male`, and a district; a free-text comment holding a canary.
- Bangladesh (`bd-swn`): its own column names (`gender`, `community`, `hinsa`) and local codes:
  `F`/`M` (the module's synonyms), `H` for hijra (the steward recodes it to `other`), violence as
  1/0; no district. One respondent's group holds a value found nowhere else (`LEVEL_CANARY`):
  it must never become a level anywhere.
- Kenya (`ke-dpo`): a Kobo-like export (`_uuid`) with the module's codes, including levels the
  others lack (`indigenous`, `other`), but no violence question at all: the column the
  partnership shares is not collected there.
"""

from pathlib import Path

import polars as pl

DATASET = "lnob_survey"
TEXT_CANARY = "zq-canary-partner-7731"
LEVEL_CANARY = "zqcanarypartnerlevel"
MODULE_GROUPS = (
    "caste_discriminated",
    "indigenous",
    "ethnic_religious_minority",
    "sex_workers",
    "lgbtiq",
    "other",
    "none",
)
SEX = ("female", "male", "other")
# What the Bangladesh steward decides after looking at the values the draft could not place.
BANGLADESH_RECODE = {"sex": {"H": "other"}, "marginalised_group": {LEVEL_CANARY: None}}
COUNTRIES = {"np-dalit": "524", "bd-swn": "050", "ke-dpo": "404"}


def exports() -> dict[str, pl.DataFrame]:
    """Each CSO's export as it would be read (text columns), with a fixed pattern per row."""
    n, b, k = 150, 120, 90
    nepal = pl.DataFrame(
        {
            "respondent_id": [f"np{i}" for i in range(n)],
            "sex": ["female" if i % 3 else "male" for i in range(n)],
            "group": ["dalit" if i % 4 else "none" for i in range(n)],
            "violence_12m": ["yes" if i % 5 == 0 else "no" for i in range(n)],
            "satisfaction": [str(1 + i % 5) for i in range(n)],
            "district": [("Saptari", "Siraha", "Kailali")[i % 3] for i in range(n)],
            "comments": [TEXT_CANARY if i % 10 == 0 else "" for i in range(n)],
        }
    )
    bangladesh = pl.DataFrame(
        {
            "id": [f"bd{i}" for i in range(b)],
            "gender": [("F", "F", "H", "M")[i % 4] for i in range(b)],
            "community": [
                LEVEL_CANARY if i == 7 else ("sex_worker", "sex_worker", "lgbt")[i % 3]
                for i in range(b)
            ],
            "hinsa": ["1" if i % 3 == 0 else "0" for i in range(b)],
            "satisfaction": [str(1 + (i * 2) % 5) for i in range(b)],
        }
    )
    kenya = pl.DataFrame(
        {
            "_uuid": [f"ke-{i:04d}-uuid" for i in range(k)],
            "sex": [SEX[i % 3] for i in range(k)],
            "marginalised_group": [("indigenous", "other", "none")[i % 3] for i in range(k)],
            "satisfaction": [str(1 + (i * 3) % 5) for i in range(k)],
            "county": [("Kisumu", "Turkana")[i % 2] for i in range(k)],
        }
    )
    return {"np-dalit": nepal, "bd-swn": bangladesh, "ke-dpo": kenya}


def write_exports(folder: Path) -> dict[str, Path]:
    """The exports as CSV files, as stewards would upload them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for node_id, frame in exports().items():
        path = folder / f"{node_id}.csv"
        frame.write_csv(path)
        paths[node_id] = path
    return paths


def mapped(node_id: str) -> pl.DataFrame:
    """The export in the shared codebook's terms, computed independently in the test."""
    frame = exports()[node_id]
    if node_id == "np-dalit":
        return frame.select(
            "sex",
            pl.col("group").replace({"dalit": "caste_discriminated"}).alias("marginalised_group"),
            "violence_12m",
        )
    if node_id == "bd-swn":
        return frame.select(
            pl.col("gender").replace({"F": "female", "M": "male", "H": "other"}).alias("sex"),
            pl.col("community")
            .replace({"sex_worker": "sex_workers", "lgbt": "lgbtiq", LEVEL_CANARY: None})
            .alias("marginalised_group"),
            pl.col("hinsa").replace({"1": "yes", "0": "no"}).alias("violence_12m"),
        )
    return frame.select("sex", "marginalised_group", pl.lit(None, pl.String).alias("violence_12m"))
