"""Three differently designed surveys (test data) and the mappings their stewards write.

Nepal (Dalit rights organisation, Nepali codes, birth year, no disability question),
Kenya (disability federation, Swahili codes, age in years, the WG-SS six questions) and
Bangladesh (sex workers' network, Bengali codes, one yes/no disability question).
"""

import polars as pl

from contracts.v1 import Column, DatasetContract, Level, PrivacyUnit

TEXT_CANARY = "zq-canary-harmon-5521"
LEVEL_CANARY = "zqcanaryunmapped"


def _levels(codes: dict[str, dict[str, str]]) -> tuple[Level, ...]:
    return tuple(Level(code=c, labels=labels) for c, labels in codes.items())


def _cat(name: str, codes: dict[str, dict[str, str]], title: str | None = None) -> Column:
    return Column(name=name, type="categorical", levels=_levels(codes), title=title)


def _unit(name: str) -> Column:
    return Column(name=name, type="string", role="unit_key")


WG_LOCAL = {
    "none": {"en": "No difficulty", "sw": "Hakuna ugumu"},
    "some": {"en": "Some difficulty", "sw": "Ugumu kiasi"},
    "alot": {"en": "A lot of difficulty", "sw": "Ugumu mkubwa"},
    "cannot": {"en": "Cannot do at all", "sw": "Siwezi kabisa"},
}
WG_COLUMNS = ("kuona", "kusikia", "kutembea", "kukumbuka", "kujihudumia", "kuwasiliana")


def surveys() -> dict[str, tuple[str, DatasetContract, pl.DataFrame]]:
    """Three surveys: (country, contract, data), built with a fixed pattern per row."""
    nepal = DatasetContract(
        name="dalit_survey",
        version=1,
        title="Dalit community survey",
        language="ne",
        columns=(
            _unit("uttaradata"),
            _cat("linga", {"mahila": {"ne": "महिला"}, "purush": {"ne": "पुरुष"}}, "लिङ्ग"),
            Column(name="janma_barsa", type="integer", lower=1900, upper=2015),
            _cat("hinsa", {"ho": {"ne": "हो"}, "hoina": {"ne": "होइन"}}, "हिंसा"),
        ),
        privacy=PrivacyUnit(unit_key="uttaradata"),
    )
    n = 240
    nepal_data = pl.DataFrame(
        {
            "uttaradata": [f"np{i}" for i in range(n)],
            "linga": ["mahila" if i % 3 else "purush" for i in range(n)],
            "janma_barsa": [1950 + (i * 7) % 60 for i in range(n)],
            "hinsa": ["ho" if i % 4 == 0 else "hoina" for i in range(n)],
        }
    )
    kenya = DatasetContract(
        name="utafiti_ulemavu",
        version=1,
        title="Disability federation survey",
        language="sw",
        columns=(
            _unit("mhojiwa"),
            _cat("jinsia", {"ke": {"sw": "Mwanamke"}, "me": {"sw": "Mwanaume"}}),
            Column(name="umri", type="integer", lower=0, upper=110),
            _cat("vurugu_12m", {"ndiyo": {"sw": "Ndiyo"}, "hapana": {"sw": "Hapana"}}),
            *(_cat(c, WG_LOCAL) for c in WG_COLUMNS),
        ),
        privacy=PrivacyUnit(unit_key="mhojiwa"),
    )
    k = 300
    answers = list(WG_LOCAL)
    kenya_data = pl.DataFrame(
        {
            "mhojiwa": [f"ke{i}" for i in range(k)],
            "jinsia": ["ke" if i % 2 else "me" for i in range(k)],
            "umri": [15 + (i * 11) % 70 for i in range(k)],
            "vurugu_12m": ["ndiyo" if i % 5 < 2 else "hapana" for i in range(k)],
            **{
                c: [answers[0] if (i + j) % 9 else answers[(i // 9 + j) % 4] for i in range(k)]
                for j, c in enumerate(WG_COLUMNS)
            },
        }
    )
    bangladesh = DatasetContract(
        name="jorip",
        version=1,
        title="Sex workers' network survey",
        language="bn",
        columns=(
            _unit("uttordata"),
            _cat(
                "lingo",
                {
                    "nari": {"bn": "নারী"},
                    "purush": {"bn": "পুরুষ"},
                    "hijra": {"bn": "হিজড়া"},
                    LEVEL_CANARY: {"bn": "অজানা"},
                },
            ),
            Column(name="boyosh", type="integer", lower=10, upper=90),
            _cat("shohingshota", {"ha": {"bn": "হ্যাঁ"}, "na": {"bn": "না"}}),
            _cat("protibondhi", {"ha": {"bn": "হ্যাঁ"}, "na": {"bn": "না"}}),
            Column(name="montobbo", type="string", role="free_text"),
        ),
        privacy=PrivacyUnit(unit_key="uttordata"),
    )
    b = 180
    sexes = ("nari", "nari", "hijra", "purush")
    bangladesh_data = pl.DataFrame(
        {
            "uttordata": [TEXT_CANARY if i == 7 else f"bd{i}" for i in range(b)],
            "lingo": [LEVEL_CANARY if i == 7 else sexes[i % 4] for i in range(b)],
            "boyosh": [18 + (i * 5) % 50 for i in range(b)],
            "shohingshota": ["ha" if i % 3 == 0 else "na" for i in range(b)],
            "protibondhi": ["ha" if i % 6 == 0 else "na" for i in range(b)],
            "montobbo": [TEXT_CANARY if i % 10 == 0 else "" for i in range(b)],
        }
    )
    return {
        "np-dalit": ("524", nepal, nepal_data),
        "ke-dpo": ("404", kenya, kenya_data),
        "bd-swn": ("050", bangladesh, bangladesh_data),
    }


MAPPINGS: dict[str, dict[str, object]] = {
    "np-dalit": {
        "dataset": "dalit_survey",
        "variables": {
            "sex": {
                "rule": "recode",
                "column": "linga",
                "levels": {"mahila": "female", "purush": "male"},
            },
            "age_band": {
                "rule": "derive",
                "method": "age_band_from_birth_year",
                "inputs": ["janma_barsa"],
                "reference_year": 2026,
            },
            "violence_12m": {
                "rule": "recode",
                "column": "hinsa",
                "levels": {"ho": "yes", "hoina": "no"},
            },
            "disability_status": {"rule": "not_collected"},
        },
    },
    "ke-dpo": {
        "dataset": "utafiti_ulemavu",
        "variables": {
            "sex": {"rule": "recode", "column": "jinsia", "levels": {"ke": "female", "me": "male"}},
            "age_band": {"rule": "derive", "method": "age_band_from_age", "inputs": ["umri"]},
            "violence_12m": {
                "rule": "recode",
                "column": "vurugu_12m",
                "levels": {"ndiyo": "yes", "hapana": "no"},
            },
            "disability_status": {
                "rule": "derive",
                "method": "wg_identifier",
                "inputs": list(WG_COLUMNS),
                "levels": {
                    "none": "no_difficulty",
                    "some": "some_difficulty",
                    "alot": "a_lot_of_difficulty",
                    "cannot": "cannot_do_at_all",
                },
            },
        },
    },
    "bd-swn": {
        "dataset": "jorip",
        "variables": {
            # The canary level is deliberately left out: its rows become missing.
            "sex": {
                "rule": "recode",
                "column": "lingo",
                "levels": {"nari": "female", "purush": "male", "hijra": "other"},
            },
            "age_band": {"rule": "derive", "method": "age_band_from_age", "inputs": ["boyosh"]},
            "violence_12m": {
                "rule": "recode",
                "column": "shohingshota",
                "levels": {"ha": "yes", "na": "no"},
            },
            # A single yes/no question is not the WG-SS identifier.
            "disability_status": {"rule": "not_collected"},
        },
    },
}


def harmonised(node_id: str, data: pl.DataFrame) -> pl.DataFrame:
    """The module view computed independently in the test, from the raw data."""
    if node_id == "np-dalit":
        age = 2026 - pl.col("janma_barsa")
        sex = pl.col("linga").replace_strict({"mahila": "female", "purush": "male"})
        violence = pl.col("hinsa").replace_strict({"ho": "yes", "hoina": "no"})
        disability = pl.lit(None, dtype=pl.String)
    elif node_id == "ke-dpo":
        age = pl.col("umri")
        sex = pl.col("jinsia").replace_strict({"ke": "female", "me": "male"})
        violence = pl.col("vurugu_12m").replace_strict({"ndiyo": "yes", "hapana": "no"})
        hit = pl.any_horizontal([pl.col(c).is_in(["alot", "cannot"]) for c in WG_COLUMNS])
        disability = pl.when(hit).then(pl.lit("yes")).otherwise(pl.lit("no"))
    else:
        age = pl.col("boyosh")
        sex = pl.col("lingo").replace_strict(
            {"nari": "female", "purush": "male", "hijra": "other"}, default=None
        )
        violence = pl.col("shohingshota").replace_strict({"ha": "yes", "na": "no"})
        disability = pl.lit(None, dtype=pl.String)
    return data.select(
        sex.alias("sex"),
        violence.alias("violence_12m"),
        disability.alias("disability_status"),
        age.alias("age"),
    )
