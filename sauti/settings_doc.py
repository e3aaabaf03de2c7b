"""Write docs/settings.md from NodeSettings and HubSettings: `python -m sauti.settings_doc`.

Each setting's description is the comment block right above its field in the settings
module (so the code and the page say the same thing); tests/deploy checks the page is current.
"""

import ast
import inspect
import sys
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from hub.settings import HubSettings
from node.settings import NodeSettings

PAGE = Path(__file__).resolve().parent.parent / "docs" / "settings.md"

INTRO = """# Settings reference

Generated from `node/settings.py` and `hub/settings.py` by `python -m sauti.settings_doc`;
do not edit by hand (a test compares this page with the code).

Every setting is read, highest first, from:

1. the command line or code that builds the settings (`--home`);
2. an environment variable, `NODE_<NAME>` or `HUB_<NAME>` (upper case);
3. a file named by `NODE_<NAME>_FILE` / `HUB_<NAME>_FILE` (Docker and Kubernetes secrets:
   the value never sits in the environment; a trailing newline is dropped);
4. a TOML file: `NODE_CONFIG_FILE` / `HUB_CONFIG_FILE` if set, else `node.toml` / `hub.toml`
   in the home folder, with the names below as keys (`request_ttl_seconds = 600`);
5. the default.

Settings marked **secret** are never printed: their value shows as `**********` in any
representation, and `database_url` is shown without its password. Keep them out of TOML
files that others can read (`chmod 600`), or better in `*_FILE` secrets.
"""


def _comments(cls: type[BaseSettings]) -> dict[str, str]:
    """Field name -> the comment lines directly above its annotation in the class body."""
    lines, _ = inspect.getsourcelines(cls)
    tree = ast.parse("".join(lines))
    body = tree.body[0]
    assert isinstance(body, ast.ClassDef)
    found: dict[str, str] = {}
    previous_end = body.body[0].lineno - 1 if body.body else 0
    for node in body.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above = [ln.strip() for ln in lines[previous_end : node.lineno - 1]]
            text = " ".join(ln.lstrip("# ").strip() for ln in above if ln.startswith("#"))
            found[node.target.id] = text
        previous_end = node.end_lineno or node.lineno
    return found


def _default(value: Any) -> str:
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if value in ((), ""):
        return "empty"
    return f"`{value}`"


def _kind(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("pathlib.", "")
    text = text.replace("<class '", "").replace("'>", "").replace("pydantic.types.", "")
    text = text.replace("hub.settings.", "").replace("NoneType", "None")
    return text.replace(" | ", " or ")  # a bare | would split the table cell


def section(title: str, cls: type[BaseSettings], prefix: str, toml: str) -> str:
    comments = _comments(cls)
    rows = [
        f"## {title} (`{prefix}*`, `{toml}`)",
        "",
        "| setting | type | default | what it does |",
        "|---|---|---|---|",
    ]
    for name, field in cls.model_fields.items():
        secret = "SecretStr" in str(field.annotation)  # pydantic's type for secrets
        kind = _kind(field.annotation) + (" **secret**" if secret else "")
        note = comments.get(name) or (field.description or "")
        rows.append(f"| `{prefix}{name.upper()}` | {kind} | {_default(field.default)} | {note} |")
    return "\n".join(rows) + "\n"


def render() -> str:
    return "\n".join(
        [
            INTRO,
            section("Node", NodeSettings, "NODE_", "node.toml"),
            section("Hub", HubSettings, "HUB_", "hub.toml"),
        ]
    )


def main() -> None:
    if "--check" in sys.argv[1:]:
        if PAGE.read_text() != render():
            print(f"{PAGE} is out of date: run python -m sauti.settings_doc")
            raise SystemExit(1)
        return
    PAGE.write_text(render())
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
