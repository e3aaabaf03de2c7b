"""Publication errors (see the tree in `hub.exceptions`)."""

from hub.exceptions import Invalid


class LanguageUnknown(Invalid):
    def __init__(self, languages: tuple[str, ...]) -> None:
        super().__init__(
            f"fact sheets are written in {', '.join(languages)}", code="language_unknown"
        )


class CountryNotInRound(Invalid):
    def __init__(self) -> None:
        super().__init__("the country is not part of this round", code="country_not_in_round")


class RoundNotFinished(Invalid):
    def __init__(self) -> None:
        super().__init__(
            "the round's queries are still running; publish once they have finished",
            code="round_not_finished",
        )
