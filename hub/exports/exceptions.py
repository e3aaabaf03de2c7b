"""Export errors (see the tree in `hub.exceptions`)."""

from hub.exceptions import Forbidden, Invalid


class ExportError(Invalid):
    """A result that cannot be written in the asked format."""


class NotInStructure(ExportError):
    """A dimension, level or indicator the shipped SDMX structure does not declare."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="sdmx_not_in_structure")


class AreaUnknown(ExportError):
    def __init__(self, node_id: str) -> None:
        super().__init__(
            f"node {node_id!r} has no UN M49 area in the structure's code list",
            code="sdmx_area_unknown",
        )


class MixedAreas(ExportError):
    def __init__(self) -> None:
        super().__init__(
            "a cell combines nodes of several countries: group the query by country to export SDMX",
            code="sdmx_mixed_areas",
        )


class DisseminationTooLow(Forbidden):
    """Results of a partners-only or restricted agreement may not be published as public."""

    def __init__(self, *, level: str, asked: str) -> None:
        super().__init__(
            f"results under a {level!r} agreement cannot be exported as {asked!r}",
            code="dissemination_not_allowed",
        )
