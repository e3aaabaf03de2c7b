"""The hub's web pages for analysts, stewards, the secretariat and auditors (Jinja2 + htmx)."""
