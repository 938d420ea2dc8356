"""The README follows the code: the settings table is generated from the Settings class (and
fails when a setting has no description or the table is stale), and every relative link or
repository path it names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.cli import settings_doc
from reconciler.config.settings import Settings
from reconciler.config.variables import env_names

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def test_every_setting_has_a_description() -> None:
    assert settings_doc.undocumented() == [], (
        "give each of these a docstring in reconciler/config/settings.py, then `make docs`"
    )


def test_a_setting_without_a_description_is_caught() -> None:
    class More(Settings):
        brand_new_knob: int = 3

    assert settings_doc.undocumented(More) == ["brand_new_knob"]
    with pytest.raises(ValueError, match="brand_new_knob"):
        settings_doc.render(More)


def test_the_readme_settings_table_is_the_generated_one() -> None:
    assert settings_doc.main(["--check", str(README)]) == 0, "run `make docs`"
    block = README.read_text().split(settings_doc.BEGIN)[1].split(settings_doc.END)[0]
    for name in Settings.model_fields:
        assert f"`{env_names(name)[0]}`" in block, name


def test_a_stale_settings_table_is_caught(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(
        README.read_text().replace(
            "`RECONCILER_API_PORT` | `8080`", "`RECONCILER_API_PORT` | `8081`"
        )
    )
    assert stale.read_text() != README.read_text()
    assert settings_doc.main(["--check", str(stale)]) == 1
    assert settings_doc.main(["--write", str(stale)]) == 0
    assert stale.read_text() == README.read_text()


def test_the_run_options_are_listed_beside_their_settings() -> None:
    assert settings_doc.run_options() == {
        "policy_path": "--policy",
        "api_host": "--api-host",
        "api_port": "--api-port",
        "log_level": "--log-level",
    }


# ------------------------------------------------------------------ links and paths

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\s]+)`")
TOP_LEVEL = {p.name for p in REPO.iterdir() if not p.name.startswith(".")} | {".ci"}


def _outside_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def relative_links(text: str) -> list[str]:
    """Markdown link targets that are not URLs or anchors, without their #fragment."""
    out = []
    for target in LINK.findall(_outside_code_blocks(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        out.append(target.split("#", 1)[0])
    return out


def repository_paths(text: str) -> list[str]:
    """Code spans that name a file or folder of this repository (`reconciler/telemetry/metrics.py`,
    `deploy/kubernetes/`), not patterns (`<name>`, `*`, `...`) nor absolute paths."""
    out = []
    for span in CODE.findall(_outside_code_blocks(text)):
        head = span.split("/", 1)[0]
        if "/" in span and head in TOP_LEVEL and not re.search(r"[<>*{}]|\.\.\.", span):
            out.append(span.rstrip(".,:;"))
    return out


def test_every_relative_link_in_the_readme_resolves_inside_the_repository() -> None:
    text = README.read_text()
    targets = relative_links(text) + repository_paths(text)
    assert len(targets) > 20, targets  # the README does name files
    broken = [
        t
        for t in targets
        if not (REPO / t).resolve().is_relative_to(REPO) or not (REPO / t).exists()
    ]
    assert not broken, broken


def test_the_link_check_can_fail() -> None:
    text = (
        "see [the unit](systemd/nope.service), [up](../elsewhere.md), [web](https://x.y/z), "
        "[here](#commands) and `reconciler/gone.py`, `templates/<name>/pod-template.yml`\n"
        "```\n[inside a block](not/checked.md)\n```\n"
    )
    assert relative_links(text) == ["systemd/nope.service", "../elsewhere.md"]
    assert repository_paths(text) == ["reconciler/gone.py"]


def test_every_link_and_path_in_the_contracts_resolves() -> None:
    # docs/contracts.md is where the README sends readers for the contracts: its links are
    # relative to docs/, the files it names in code spans to the repository's root.
    doc = REPO / "docs" / "contracts.md"
    text = doc.read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")
        for title in re.findall(r"^## (.+)$", text, flags=re.M)
    }
    links = LINK.findall(_outside_code_blocks(text))
    assert [t for t in links if t.startswith("#") and t[1:] not in anchors] == []
    broken = [t for t in relative_links(text) if not (doc.parent / t).exists()]
    broken += [p for p in repository_paths(text) if not (REPO / p).exists()]
    assert len(repository_paths(text)) > 10
    assert not broken, broken
    readme = README.read_text()
    assert "docs/contracts.md" in relative_links(readme)
    assert "../shared/SPEC.md" not in readme
