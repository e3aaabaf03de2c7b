"""Cross-country assessments: templates of indicators, rounds over countries, comparisons."""
