"""Fact sheets of assessment rounds: HTML and PDF in five languages, charts as inline SVG."""
