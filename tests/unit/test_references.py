"""What ships cites only what ships, and comments say why, not what some machine measured.

1. Every file a shipped file names exists in the repository: `SPEC.md`, `DESIGN.md` and a
   bare "SPEC" never do (the contracts are docs/contracts.md, the design
   docs/architecture.md); a path (`reconciler/adapters/zookeeper/pins.py`,
   `../templates/iota-dac/pod-template.yml`) must resolve from the repository's root, the
   citing file's folder or the `reconciler` package; a bare module name (`budget.py`) must
   be a sibling of the citing file; `docs/x.md "Heading"` and `docs/x.md#anchor` must name a
   heading of that page; a dotted `reconciler.x.y` must be a module (or a name in one).
2. No comment or docstring in reconciler/ carries a measured figure (a duration, a size, a
   rate, a share, an approximation, a speed-up) or an issue number: those go stale with the
   machine and the code. Figures live in docs/benchmarks.md with their context. A few
   figures are specifications rather than measurements; they are listed in `SPECIFIED`,
   each with its reason.
"""

from __future__ import annotations

import io
import re
import tokenize
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "reconciler"

# ------------------------------------------------------------------ what ships


def shipped_files() -> list[Path]:
    """The code and the files deployed with it (tests, bench, demo and rig are not shipped)."""
    files = [p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts]
    for folder in ("config", "templates", "deploy", "systemd", "charts"):
        if (REPO / folder).is_dir():
            files += [p for p in (REPO / folder).rglob("*") if p.is_file()]
    files += sorted((REPO / "dashboards").glob("*.yaml"))
    files += [REPO / "kustomization.yaml"]
    return sorted(p for p in files if p.exists() and _is_text(p))


def _is_text(path: Path) -> bool:
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return False
    return True


def python_prose(source: str) -> Iterator[tuple[int, str, bool]]:
    """(line, text, is_docstring_or_comment) of every comment and string literal of Python
    `source`: docstrings and comments are prose; other strings (messages, JSON, the fleet
    page's markup) may still cite files, but carry no measured figures."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    before = tokenize.NEWLINE
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string, True
        elif tok.type == tokenize.STRING:
            statement = before in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
            yield tok.start[0], _string_body(tok.string), statement
        if tok.type not in (tokenize.NL, tokenize.COMMENT):
            before = tok.type


def _string_body(literal: str) -> str:
    """The text of a string literal without its prefix and quotes."""
    body = literal.lstrip("rRbBuUfF")
    quote = body[:3] if body[:3] in ('"""', "'''") else body[:1]
    return body[len(quote) : len(body) - len(quote)]


def texts_of(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(first line, text, is prose) of the parts of a shipped file that can cite a file: a
    Python file's comments and strings (docstrings and comments are prose), any other file
    whole."""
    source = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        yield from python_prose(source)
    else:
        yield 1, source, False


def prose_of(path: Path) -> Iterator[tuple[int, str]]:
    """(first line, text) of the comments and docstrings of a Python file."""
    for line, text, prose in python_prose(path.read_text(encoding="utf-8")):
        if prose:
            yield line, text


def _line(start: int, text: str, offset: int) -> int:
    return start + text.count("\n", 0, offset)


# ------------------------------------------------------------------ 1. files cited

# Documents that were never in this repository, cited by name ("SPEC layout", SPEC.md).
MISSING_DOCUMENT = re.compile(r"\b(?:SPEC|DESIGN)(?:\.md)?\b")
EXTENSIONS = "py|md|yaml|yml|json|toml|service|sh|cfg|ini|txt"
# A path-like name: not part of an absolute path, a URL, a shell or Go variable
# (`$PREFIX/README.md`) or a pattern (`templates/<name>/...`), and not a method call
# (`resp.json()` in the fleet page's script).
PATH = re.compile(
    rf"(?<![\w/$.{{}}<>:@~\\-])"
    rf"((?:\.{{1,2}}/)*(?:[\w.-]+/)*[\w-][\w.-]*\.(?:{EXTENSIONS}))"
    rf"(?:#([\w-]+))?"
    rf"(?![\w(/-])"
)
# `docs/contracts.md "Sizing"`, `SECURITY.md ("ZooKeeper")`: a heading, cited by its title.
HEADING_CITED = re.compile(r'\s*\(?"([A-Z][^"/$\n]*)"')
# `reconciler.reconcile.pipeline.run_pass`, not the label `reconciler.iota/kind`.
DOTTED = re.compile(r"\breconciler(?:\.[a-z_][a-z0-9_]*)+(?:\.[A-Za-z_]\w*)?(?![\w/-]|\.\w)")
TOP_LEVEL = {p.name for p in REPO.iterdir()}
PACKAGE_FOLDERS = {p.name for p in PACKAGE.rglob("*") if p.is_dir() and p.name != "__pycache__"}


def headings(doc: Path) -> set[str]:
    return {h.strip() for h in re.findall(r"^#{1,6} (.+)$", doc.read_text(), flags=re.M)}


def _has_heading(doc: Path, title: str) -> bool:
    """`title` is a heading of `doc`, or the start of one (`"ZooKeeper"` for "ZooKeeper (the
    assignment the workers read)")."""
    return any(h == title or h.startswith(f"{title} (") for h in headings(doc))


def anchors(doc: Path) -> set[str]:
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings(doc)}


def _resolve(cited: str, citing: Path) -> Path | None:
    """The file `cited` names, seen from `citing`; None when it names none here."""
    if "/" not in cited:
        if cited.endswith(".md"):
            places = [citing.parent, REPO, REPO / "docs"]
        elif cited.endswith(".py"):
            places = [citing.parent]  # a module of another package is named with its path
        else:
            return citing  # policy.yaml, a ConfigMap key: a name, not a path to check
    else:
        places = [citing.parent, REPO, PACKAGE]
    for place in places:
        if (place / cited).exists():
            return (place / cited).resolve()
    return None


def _ours(cited: str) -> bool:
    """Whether a path names a file of this repository rather than of another project
    (`kazoo/recipe/election.py`, `pkg/reconcile/reconcile.go`)."""
    if "/" not in cited or cited.startswith(("./", "../")):
        return True
    head = cited.split("/", 1)[0]
    return head in TOP_LEVEL or head in PACKAGE_FOLDERS


def _dotted_exists(name: str) -> bool:
    parts = name.split(".")
    for n in range(len(parts), 1, -1):
        base = REPO.joinpath(*parts[:n])
        module = base.with_suffix(".py") if base.with_suffix(".py").exists() else None
        if module is None and (base / "__init__.py").exists():
            module = base / "__init__.py"
        if module is not None:
            rest = parts[n:]
            return (
                not rest or re.search(rf"\b{re.escape(rest[0])}\b", module.read_text()) is not None
            )
    return False


def broken_references(path: Path, start: int, text: str, prose: bool = True) -> list[str]:
    """What `text` (from line `start` of `path`) cites that is not in the repository. A dotted
    `reconciler.x` is checked in prose only: in code it may be a logger's name, which stays
    as it is when a module moves."""
    where = path.relative_to(REPO)
    out = []
    for m in MISSING_DOCUMENT.finditer(text):
        out.append(
            f"{where}:{_line(start, text, m.start())}: {m.group(0)} is not in the repository"
        )
    for m in PATH.finditer(text):
        cited, anchor = m.group(1), m.group(2)
        if not _ours(cited):
            continue
        target = _resolve(cited, path)
        line = _line(start, text, m.start())
        if target is None:
            out.append(f"{where}:{line}: {cited} does not exist")
            continue
        if target.suffix != ".md" or target == path:
            continue
        heading = HEADING_CITED.match(text, m.end())
        if heading and not _has_heading(target, heading.group(1)):
            out.append(f'{where}:{line}: {cited} has no heading "{heading.group(1)}"')
        if anchor and anchor not in anchors(target):
            out.append(f"{where}:{line}: {cited} has no anchor #{anchor}")
    if path.suffix == ".py" and prose:
        for m in DOTTED.finditer(text):
            if re.search(rf"\.(?:{EXTENSIONS}|log)$", m.group(0)):
                continue  # a file's name (reconciler.service, reconciler.log), not a module
            if not _dotted_exists(m.group(0)):
                out.append(f"{where}:{_line(start, text, m.start())}: {m.group(0)} is no module")
    return out


def test_every_file_a_shipped_file_cites_exists() -> None:
    files = shipped_files()
    assert len(files) > 100, "the scan found no code: is REPO right?"
    broken = [
        b
        for p in files
        for line, text, prose in texts_of(p)
        for b in broken_references(p, line, text, prose)
    ]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('the layout (SPEC "ZooKeeper layout")', ["SPEC"]),
        ("see SPEC.md and DESIGN.md", ["SPEC.md", "DESIGN.md"]),
        ("pins (adapters/zk_pins.py)", ["adapters/zk_pins.py does not exist"]),
        ("the planner (planner.py)", ["planner.py does not exist"]),
        ("api_ops.py, reconciler/autoscale.py", ["api_ops.py", "reconciler/autoscale.py"]),
        ('docs/contracts.md "No such heading"', ['has no heading "No such heading"']),
        ("docs/contracts.md#no-such-anchor", ["has no anchor #no-such-anchor"]),
        ("reconciler.reconcile.nowhere", ["reconciler.reconcile.nowhere is no module"]),
        ("templates/gone/pod-template.yml", ["templates/gone/pod-template.yml does not exist"]),
    ],
)
def test_the_reference_check_finds(text: str, found: list[str]) -> None:
    citing = PACKAGE / "runtime" / "loop.py"
    problems = "\n".join(broken_references(citing, 1, text))
    for f in found:
        assert f in problems, problems


@pytest.mark.parametrize(
    "text",
    [
        'the layout (docs/contracts.md "ZooKeeper layout")',
        "reconciler/adapters/zookeeper/pins.py, liveness.py, rules/growth.py, "
        "tests/support/fakes.py",
        "docs/contracts.md#sizing, README.md, SECURITY.md",
        "PodSpec, SPECIAL, POD_SPEC, spec.containers[0], a specification",
        "`$PREFIX/README.md`, /etc/reconciler/config/policy.yaml, file:///opt/x/README.md",
        "https://github.com/x/y/blob/main/README.md, kazoo/recipe/election.py",
        "templates/<instanceName>/pod-template.yml, policy.yaml, iota-dac.pod-template.yml",
        "await resp.json(); reconciler.reconcile.pipeline.run_pass, reconciler.domain.ids",
        "k8s.io/client-go/tools/events, metrics.k8s.io/v1beta1",
        "systemd/reconciler.service runs reconciler.service, logging to reconciler.log",
    ],
)
def test_the_reference_check_leaves_alone(text: str) -> None:
    citing = PACKAGE / "runtime" / "loop.py"
    assert broken_references(citing, 1, text) == []


def test_a_relative_path_is_seen_from_the_citing_file() -> None:
    policy = REPO / "config" / "policy.yaml"
    assert broken_references(policy, 1, "template: ../templates/iota-dac/pod-template.yml") == []
    assert broken_references(policy, 1, "template: ../templates/nope/pod-template.yml") != []


# ------------------------------------------------------------------ 2. figures in comments

NUMBER = r"(?<![\w.,/-])~?\d+(?:[.,]\d+)*(?:k| ?million)?"
# A unit right after the number ("500ms", "5%") or after a space ("30 s": a bare "s" needs
# the space, so "1s"/"0s" in a sample of kubectl's AGE column is not a duration claim).
UNIT = (
    r"(?:\s?(?:ns|µs|us|ms|[KMGT]i?B|%)|\s(?:s|secs?|seconds?|min|minutes?|h|hours?|B|bytes?)"
    r"|\s?(?:ids|rows|writes|messages|events|ops)/s)"
)
FIGURE = re.compile(rf"{NUMBER}{UNIT}(?![\w/])")
APPROXIMATE = re.compile(r"(?<![\w`])~\s?\d")  # "~150 writes", "~40 ms": what one run saw
SPEED_UP = re.compile(
    r"\b\d+(?:\.\d+)?\s?x (?:faster|slower|less|more)\b|\btimes (?:faster|slower)\b"
)
ISSUE = re.compile(r"\bissue #?\d+", re.I)
# Literal examples inside a comment (`"30s"` as a Go duration, `` `limit + 1` ``) are not claims.
QUOTED = re.compile(r"`[^`]{0,80}`|\"[^\"]{0,80}\"")  # a span may wrap to the next line

# Figures that are specifications, not measurements: the path, the figure as written, and why
# it may stay. Keep this short; a figure anyone measured belongs in docs/benchmarks.md.
SPECIFIED: dict[tuple[str, str], str] = {
    # Settings' docstrings state defaults and limits; the README's settings table is
    # generated from them (`make docs`), so they are the documentation of record.
    **{
        ("reconciler/config/settings.py", fig): "a setting's documented default or limit"
        for fig in ("1 s", "3 s", "60 s")
    },
    ("reconciler/adapters/kube/events.py", "6 min"): "client-go's series window, copied",
    ("reconciler/adapters/kube/events.py", "300 s"): "the recorder's token rate, a constant here",
    ("reconciler/adapters/kube/events.py", "1 h"): "the apiserver's documented event TTL",
    ("reconciler/api/access.py", "10 minutes"): "the CORS max-age this module sends",
    ("reconciler/state/expectations.py", "5 minutes"): "ReplicaSet expectations' documented TTL",
}


def measured_figures(text: str) -> list[str]:
    """The figures and issue numbers of one comment or docstring."""
    bare = QUOTED.sub(lambda m: " " * len(m.group(0)), text)
    figures = list(FIGURE.finditer(bare))
    found = [m.group(0).strip() for m in figures]
    covered = {m.start() for m in figures}  # "~40 ms" once, not again as "~4"
    for pattern in (APPROXIMATE, SPEED_UP, ISSUE):
        found += [m.group(0) for m in pattern.finditer(bare) if m.start() not in covered]
    return found


def test_no_comment_in_the_package_carries_a_measured_figure() -> None:
    found = []
    allowed_seen = set()
    for path in sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts):
        where = str(path.relative_to(REPO))
        for line, text in prose_of(path):
            for figure in measured_figures(text):
                if (where, figure) in SPECIFIED:
                    allowed_seen.add((where, figure))
                    continue
                found.append(f"{where}:{line}: {figure!r}")
    assert not found, (
        "comments say why; put measured figures in docs/benchmarks.md with their context:\n"
        + "\n".join(found)
    )
    assert allowed_seen == set(SPECIFIED), f"stale allow-list: {set(SPECIFIED) - allowed_seen}"


@pytest.mark.parametrize(
    "text",
    [
        "costs ~40 ms at 500k rows",
        "5,000 single creates became ~150 writes",
        "was 100 MB more at the peak",
        "a million ids: 4.6 s -> ms",
        "(at 500k ids ~27 MiB more at the peak of the read)",
        "a 200 MB POST took the daemon to 840 MB",
        "5% of capacity",
        "never two owners (issue 12)",
        "10x faster than a set",
        "~6,500 ids/s",
        "1 ms keeps the MQTT thread up",
    ],
)
def test_the_figure_check_finds(text: str) -> None:
    assert measured_figures(text), text


@pytest.mark.parametrize(
    "text",
    [
        'A Go time.Duration string ("30s", "1m0s", "500ms") -> seconds.',
        "    1s   Warning   PodDead   pod/iota-dac-1",
        "reads at most `limit + 1` bytes",
        "the 5,000 ids of an instance; maxInstances is at most 100",
        "UTF-8 bytes, base64 text, a Python 3.11 feature, paho-mqtt 2.x, k8s.io/v1",
        "a dead TCP connection is noticed within 1.5 x keepalive",
        "kubeconfig, default `~/.kube/config`",
    ],
)
def test_the_figure_check_leaves_alone(text: str) -> None:
    assert measured_figures(text) == [], text


# ------------------------------------------------------------------ the architecture page


def test_the_architecture_page_states_the_import_contracts() -> None:
    """docs/architecture.md lists the layers and names every contract of pyproject.toml's
    [tool.importlinter] (the rules lint-imports checks), so the page cannot drift from them."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    page = (REPO / "docs" / "architecture.md").read_text()
    prose = " ".join(page.split())
    for contract in contracts:
        assert f"`{contract['id']}`" in page, contract["id"]
        assert contract["name"] in prose, contract["name"]
    layers = next(c for c in contracts if c["id"] == "layers")["layers"]
    assert "```\n" + "\n".join(layers) + "\n```" in page
