"""Errors of shared modules and coverage (see the tree in `hub.exceptions`)."""

from hub.exceptions import HubSetupError, Invalid, NotFound


class ModuleNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("no shipped module has this name and version", code="module_not_found")


class ModuleFileInvalid(HubSetupError):
    """A shipped module file does not parse: the hub package itself is broken."""

    def __init__(self, filename: str) -> None:
        super().__init__(f"shipped module file {filename} is invalid", code="module_file_invalid")


class CoverageInvalid(Invalid):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="coverage_invalid")


class ModuleNotShipped(Invalid):
    def __init__(self, name: str, version: int) -> None:
        super().__init__(
            f"term modules: module {name} version {version} is not shipped with this hub",
            code="module_not_shipped",
        )
