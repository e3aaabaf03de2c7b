"""The `sauti ...` command lines of README.md and docs/*.md code blocks, and a check that each
names real commands and options (read from the typer app itself, nothing run)."""

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import typer.main

from sauti.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
# `sauti` as a word (or a path ending in it) followed by a sub-command: skips `sudo -u sauti`.
START = re.compile(r"(?:^|[\s/])sauti\s+(?=[a-z])")


@dataclass(frozen=True)
class Line:
    where: str  # "README.md:123"
    text: str  # from `sauti` on, comments removed, continuations joined


def command_lines() -> list[Line]:
    lines: list[Line] = []
    for document in DOCUMENTS:
        in_block = False
        pending: tuple[int, str] | None = None
        for at, raw in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
            number = at
            if raw.lstrip().startswith("```"):
                in_block = not in_block
                continue
            if not in_block:
                continue
            text = re.sub(r"\s+#\s.*$", "", raw).rstrip()
            if pending is not None:
                text = f"{pending[1]} {text.strip()}"
                number = pending[0]
                pending = None
            if text.endswith("\\"):
                pending = (number, text[:-1].rstrip())
                continue
            for part in re.split(r"\s\|\s(?=sauti\s)", text):
                for match in START.finditer(part):
                    rest = part[match.end() :]
                    if rest.split()[0] in _top_names():
                        lines.append(Line(f"{document.name}:{number}", "sauti " + rest))
                        break
    return lines


def _top_names() -> list[str]:
    return _root().list_commands(None)  # type: ignore[no-any-return]


def _root() -> Any:
    return typer.main.get_command(app)


def tokens(line: Line) -> list[str]:
    """The words after `sauti`; `[...]` marks optional parts, `...` stands for others."""
    words = shlex.split(line.text.replace("[", " ").replace("]", " "))[1:]
    return [w for w in words if w not in {"...", "|"}]


def problems(line: Line) -> list[str]:
    """What in `line` the CLI would not accept: unknown commands or options, too many args."""
    words = tokens(line)
    commands = [_root()]
    path: list[str] = []
    while words and all(hasattr(c, "commands") for c in commands):
        head = words.pop(0)
        names = head.split("|")
        found = [c.get_command(None, n) for c in commands for n in names]
        if any(f is None for f in found):
            return [f"{line.where}: `sauti {' '.join(path)}` has no command {head!r}"]
        commands = found
        path.append(head)
    if any(hasattr(c, "commands") for c in commands):
        return [f"{line.where}: `sauti {' '.join(path)}` needs a sub-command"]
    return [p for command in commands for p in _arguments(line, path, command, list(words))]


def _arguments(line: Line, path: list[str], command: Any, words: list[str]) -> list[str]:
    options = {name: p for p in command.params for name in (*p.opts, *p.secondary_opts)}
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    found: list[str] = []
    positional = 0
    while words:
        word = words.pop(0)
        if word.startswith("-") and len(word) > 1 and not re.fullmatch(r"-[\d.]+", word):
            name = word.split("=", 1)[0]
            if name in {"--help"}:
                continue
            param = options.get(name)
            if param is None:
                found.append(f"{line.where}: `sauti {' '.join(path)}` has no option {name}")
            elif not param.is_flag:
                value = word.split("=", 1)[1] if "=" in word else words.pop(0) if words else ""
                found += _choice(line, path, name, param, value)
            continue
        positional += 1
    if positional > len(arguments) and not any(a.nargs == -1 for a in arguments):
        found.append(
            f"{line.where}: `sauti {' '.join(path)}` takes {len(arguments)} argument(s), "
            f"the line gives {positional}"
        )
    return found


def _choice(line: Line, path: list[str], name: str, param: Any, value: str) -> list[str]:
    choices = _literal_values(param.type_descriptor.annotation)
    if not choices or value.isupper():  # an upper-case word is a placeholder
        return []
    return [
        f"{line.where}: `sauti {' '.join(path)} {name}` takes no {one!r} ({'|'.join(choices)})"
        for one in value.split("|")
        if one not in choices
    ]


def _literal_values(annotation: Any) -> tuple[str, ...]:
    if get_origin(annotation) is Literal:
        return tuple(str(a) for a in get_args(annotation))
    return next((v for a in get_args(annotation) if (v := _literal_values(a))), ())
