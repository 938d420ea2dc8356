"""The settings reference, generated from the Settings class: one row per field with its
environment variable(s), default, `reconciler run` option and description.

    python -m reconciler.cli.settings_doc                                print the table (Markdown)
    python -m reconciler.cli.settings_doc --write docs/configuration.md  replace the table between
    the markers
    python -m reconciler.cli.settings_doc --check docs/configuration.md  exit 1 if that table is
    stale

A field without a description is an error: give it a docstring (the string on the line
under the field, pydantic's use_attribute_docstrings) in reconciler/config/, then
`make docs`.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from reconciler.cli.main import run
from reconciler.config.settings import Settings
from reconciler.config.variables import env_names

BEGIN = (
    "<!-- BEGIN settings: generated from reconciler/config/settings.py by `make docs`"
    " (python -m reconciler.cli.settings_doc); edit the descriptions there -->"
)
END = "<!-- END settings -->"


def default_text(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return "computed"
    value: Any = info.default
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    if value == "":
        return "empty"
    return f"`{value}`"


def run_options() -> dict[str, str]:
    """Field name -> the `reconciler run` option that overrides it."""
    return {p.name: p.opts[0] for p in run.params if p.name in Settings.model_fields and p.opts}


def undocumented(model: type[BaseSettings] = Settings) -> list[str]:
    """Fields with no docstring (no description)."""
    return [name for name, info in model.model_fields.items() if not info.description]


def render(model: type[BaseSettings] = Settings) -> str:
    missing = undocumented(model)
    if missing:
        raise ValueError(
            f"settings without a description: {', '.join(missing)}: give each a docstring "
            "(the line under the field) in reconciler/config/, then `make docs`"
        )
    options = run_options()
    lines = [
        "| variable | default | `run` option | meaning |",
        "|---|---|---|---|",
    ]
    for name, info in model.model_fields.items():
        variables = " or ".join(f"`{v}`" for v in env_names(name, model))
        option = f"`{options[name]}`" if name in options else ""
        description = " ".join(str(info.description).split()).replace("|", "\\|")
        lines.append(f"| {variables} | {default_text(info)} | {option} | {description} |")
    return "\n".join(lines) + "\n"


def replace_block(text: str, table: str) -> str:
    """`text` with the part between BEGIN and END replaced by `table`."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n\n" + table + "\n" + text[end:]


def main(argv: list[str]) -> int:
    if not argv:
        sys.stdout.write(render())
        return 0
    if len(argv) != 2 or argv[0] not in ("--write", "--check"):
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[1])
    text = path.read_text()
    if BEGIN not in text or END not in text:
        print(f"{path}: no settings markers ({BEGIN} ... {END})", file=sys.stderr)
        return 1
    new = replace_block(text, render())
    if argv[0] == "--write":
        path.write_text(new)
        return 0
    if new != text:
        print(f"{path}: the settings table is stale: run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
