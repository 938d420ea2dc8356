"""Shell transcripts in README.md and docs/ cannot go stale: every block with `$ ` commands that
is not marked `<!-- transcript: illustrative -->` is run here, from the repository root, and
its output must be what the block shows. `…` in a shown line stands for anything (a port, a
time, an id). Flipping the shipped policy's `initInstances` changes `validate`'s hash, so it
fails this test (shown below on a copy of the repository's files)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ILLUSTRATIVE = "<!-- transcript: illustrative -->"
BLOCK = re.compile(r"(<!-- transcript: illustrative -->\s*\n)?```[a-z]*\n(.*?)```", re.S)


@dataclass(frozen=True)
class Step:
    where: str  # file:line of the block
    command: str
    shown: list[str]


def transcripts(root: Path = REPO) -> list[Step]:
    steps: list[Step] = []
    for page in [root / "README.md", *sorted((root / "docs").rglob("*.md"))]:
        text = page.read_text()
        for m in BLOCK.finditer(text):
            if m.group(1) or "$ " not in m.group(2):
                continue
            line = text[: m.start(2)].count("\n") + 1
            where = f"{page.relative_to(root)}:{line}"
            current: Step | None = None
            for raw in m.group(2).splitlines():
                if raw.startswith("$ "):
                    current = Step(where, raw[2:], [])
                    steps.append(current)
                elif current is not None:
                    current.shown.append(raw)
    return steps


def _clean_env() -> dict[str, str]:
    """The environment of someone who just cloned the repository: no settings of ours."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RECONCILER_", "IOTA_", "KUBECONFIG", "NO_COLOR"))
    }
    env["COLUMNS"] = "100"
    return env


def run(step: Step, cwd: Path) -> list[str]:
    res = subprocess.run(
        ["bash", "-c", step.command],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (res.stdout + res.stderr).rstrip("\n").splitlines()


def matches(shown: list[str], printed: list[str]) -> bool:
    if len(shown) != len(printed):
        return False
    for want, got in zip(shown, printed, strict=True):
        pattern = ".*".join(re.escape(part) for part in want.split("…"))
        if not re.fullmatch(pattern, got):
            return False
    return True


STEPS = transcripts()


def test_the_docs_hold_real_transcripts() -> None:
    assert len(STEPS) >= 5
    assert any("validate config/policy.yaml" in s.command for s in STEPS)


@pytest.mark.parametrize("step", STEPS, ids=[f"{s.where} {s.command}" for s in STEPS])
def test_each_transcript_prints_what_it_shows(step: Step) -> None:
    printed = run(step, REPO)
    assert matches(step.shown, printed), f"{step.where}: `{step.command}` printed:\n" + "\n".join(
        printed
    )


def test_the_placeholder_stands_for_any_text_and_nothing_else() -> None:
    assert matches(["port …, ready"], ["port 43121, ready"])
    assert not matches(["port …, ready"], ["port 43121, not ready"])
    assert not matches(["a", "b"], ["a"])


def test_flipping_the_shipped_initinstances_makes_the_validate_transcript_fail(
    tmp_path: Path,
) -> None:
    for part in ("config", "templates", "docs"):
        shutil.copytree(REPO / part, tmp_path / part)
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    policy = tmp_path / "config" / "policy.yaml"
    text = policy.read_text()
    assert re.search(r"initInstances: 10\b", text)
    policy.write_text(re.sub(r"initInstances: 10\b", "initInstances: 4", text))
    (step,) = [
        s
        for s in transcripts(tmp_path)
        if s.where.startswith("README.md") and s.command.endswith("validate config/policy.yaml")
    ]
    assert not matches(step.shown, run(step, tmp_path))
