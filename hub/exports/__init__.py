"""Exports of hub results: CSV, XLSX and SDMX-CSV 2.0 against the shipped LNOB structure."""
