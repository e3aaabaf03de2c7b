"""The export formats a node reads: a name of its own, light enough for the CLI's options."""

from typing import Literal

FileFormat = Literal["kobo", "odk", "csv", "xlsx", "parquet"]
