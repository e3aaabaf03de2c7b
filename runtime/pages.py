"""What the hub's and the node's pages share: templates both sides' loaders fall back on
(`templates/guide.html`, the role guides' macros)."""

from jinja2 import PackageLoader


def shared_templates() -> PackageLoader:
    """The shared templates, for the end of a side's `ChoiceLoader` (its own come first)."""
    return PackageLoader("runtime", "templates")
