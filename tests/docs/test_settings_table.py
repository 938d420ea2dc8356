"""The settings reference follows the code: the table in docs/configuration.md is generated from
the Settings class, and fails when a setting has no description or the table is stale. (The
links and paths of the README and of docs/ are checked in tests/docs/test_links.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import settings_doc
from reconciler.config.settings import Settings
from reconciler.config.variables import env_names

REPO = Path(__file__).resolve().parents[2]
CONFIGURATION = REPO / "docs" / "configuration.md"


def test_every_setting_has_a_description() -> None:
    assert settings_doc.undocumented() == [], (
        "give each of these a docstring in reconciler/config/, then `make docs`"
    )


def test_a_setting_without_a_description_is_caught() -> None:
    class More(Settings):
        brand_new_knob: int = 3

    assert settings_doc.undocumented(More) == ["brand_new_knob"]
    with pytest.raises(ValueError, match="brand_new_knob"):
        settings_doc.render(More)


def test_the_settings_table_is_the_generated_one() -> None:
    assert settings_doc.main(["--check", str(CONFIGURATION)]) == 0, "run `make docs`"
    block = CONFIGURATION.read_text().split(settings_doc.BEGIN)[1].split(settings_doc.END)[0]
    for name in Settings.model_fields:
        assert f"`{env_names(name)[0]}`" in block, name


def test_the_settings_table_is_only_in_the_configuration_page() -> None:
    """One table, one place: the README links to it instead of carrying a copy."""
    assert settings_doc.BEGIN not in (REPO / "README.md").read_text()
    others = [
        p.name
        for p in (REPO / "docs").glob("*.md")
        if p != CONFIGURATION and settings_doc.BEGIN in p.read_text()
    ]
    assert others == []


def test_a_stale_settings_table_is_caught(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(
        CONFIGURATION.read_text().replace(
            "`RECONCILER_API_PORT` | `8080`", "`RECONCILER_API_PORT` | `8081`"
        )
    )
    assert stale.read_text() != CONFIGURATION.read_text()
    assert settings_doc.main(["--check", str(stale)]) == 1
    assert settings_doc.main(["--write", str(stale)]) == 0
    assert stale.read_text() == CONFIGURATION.read_text()


def test_the_run_options_are_listed_beside_their_settings() -> None:
    assert settings_doc.run_options() == {
        "policy_path": "--policy",
        "api_host": "--api-host",
        "api_port": "--api-port",
        "log_level": "--log-level",
        "observe_only": "--observe-only",
    }
