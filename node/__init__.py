"""Sauti node: holds a CSO's raw data and releases only DP aggregates its agreements allow."""
