"""Which environment variables set a field of `Settings`: what the CLI names in its errors and
the settings reference lists (`reconciler/cli/settings_doc.py`)."""

from __future__ import annotations

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from reconciler.config.settings import Settings


def env_names(field: str, model: type[BaseSettings] = Settings) -> list[str]:
    """The environment variables a field is read from, the preferred one first."""
    info = model.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(c) for c in alias.choices]
    if isinstance(alias, str):
        return [alias]
    prefix = model.model_config.get("env_prefix", "")
    return [f"{prefix}{field}".upper()]
