"""Errors of dataset import and lookup (see node.exceptions for the whole hierarchy)."""

from node.exceptions import DatasetError


class DatasetInvalid(DatasetError):
    code = "dataset_invalid"


class DatasetExists(DatasetError):
    code = "dataset_exists"


class UnknownDataset(DatasetError):
    code = "unknown_dataset"
