"""Every relative link of README.md and of the pages in docs/ resolves inside the repository:
to a file or folder that exists and, where the link names an #anchor of a Markdown file, to a
heading of that file. Code spans that name a file of the repository (`deploy/install.sh`,
`reconciler/telemetry/metrics.py`) must name one that exists.

The anchors are GitHub's (what a reader of the repository clicks); the site's build
(test_site.py, `mkdocs build --strict`) checks the same links with MkDocs' own. Files that
the code cites are checked by tests/unit/test_references.py; this module covers the
documents themselves.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"

LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE = re.compile(r"`([^`\s]+)`")
FENCED = re.compile(r"^[ \t]*(`{3,}|~{3,}).*?^[ \t]*\1[ \t]*$", re.S | re.M)
COMMENT = re.compile(r"<!--.*?-->", re.S)
SNIPPET = re.compile(r'^--8<-- "([^"]+)"[ \t]*$', re.M)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _ignored_top_level() -> set[str]:
    """Top-level names .gitignore lists (site/, test-artifacts/, ...): generated, not shipped."""
    lines = (REPO / ".gitignore").read_text().splitlines()
    return {line.strip().strip("/") for line in lines if line.strip() and "*" not in line}


TOP_LEVEL = {
    p.name
    for p in REPO.iterdir()
    if not p.name.startswith(".") and p.name not in _ignored_top_level()
} | {".ci"}


def expanded(path: Path) -> str:
    """The text of a document with its snippets (`--8<-- "SECURITY.md"`, included by the site
    from the repository's root) in place."""
    return SNIPPET.sub(lambda m: (REPO / m.group(1)).read_text(), path.read_text())


def prose(text: str) -> str:
    """`text` without fenced code blocks and HTML comments: what is rendered as Markdown."""
    return COMMENT.sub("", FENCED.sub("", text))


def links(text: str) -> list[str]:
    """Inline link targets of Markdown `text` that are relative (no URL scheme, not rooted),
    anchors within the page included; inline code spans are not links."""
    text = re.sub(r"`[^`\n]+`", "", prose(text))
    return [t for t in LINK.findall(text) if not SCHEME.match(t) and not t.startswith("/")]


def repository_paths(text: str) -> list[str]:
    """Code spans that name a file or folder of this repository (`reconciler/telemetry/metrics.py`,
    `deploy/kubernetes/`), not patterns (`<name>`, `*`, `...`) nor absolute paths."""
    out = []
    for span in CODE.findall(prose(text)):
        head = span.split("/", 1)[0]
        if "/" in span and head in TOP_LEVEL and not re.search(r"[<>*{}$]|\.\.\.", span):
            out.append(span.rstrip(".,:;"))
    return out


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces
    to `-`."""
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link: its text
    title = re.sub(r"<[^>]+>", "", title).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", title).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (a repeated one gets -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for title in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", prose(expanded(path)), flags=re.M):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(path: Path) -> list[str]:
    """The relative links of `path` that do not resolve inside the repository."""
    broken = []
    where = path.relative_to(REPO)
    for target in links(expanded(path)):
        relative, _, anchor = target.partition("#")
        resolved = (path.parent / relative).resolve() if relative else path
        if not resolved.is_relative_to(REPO):
            broken.append(f"{where}: {target}: outside the repository")
        elif not resolved.exists():
            broken.append(f"{where}: {target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{where}: {target}: {resolved.name} has no heading #{anchor}")
    return broken


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_inside_the_repository(path: Path) -> None:
    assert broken_links(path) == []


def missing_paths(text: str) -> list[str]:
    """The repository paths of `text` that name nothing: a file that does not exist, or a
    test (`tests/x.py::test_name`) that its file does not define."""
    missing = []
    for span in repository_paths(text):
        path, *names = span.split("::")
        exists = (REPO / path).exists()
        defined = exists and all(
            re.search(rf"^\s*def {re.escape(name)}\(", (REPO / path).read_text(), re.M)
            for name in names
        )
        if not defined:
            missing.append(span)
    return missing


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_repository_path_in_a_code_span_exists(path: Path) -> None:
    assert missing_paths(expanded(path)) == []


def test_the_documents_do_link_and_name_files() -> None:
    """The checks above have something to check: the README links into docs/, and the pages
    link to each other and name the repository's files."""
    readme = README.read_text()
    assert len(links(readme)) > 20
    assert "docs/contracts.md" in links(readme)
    assert "../shared/SPEC.md" not in readme
    assert sum(len(links(expanded(p))) for p in DOCS.glob("*.md")) > 100
    assert sum(len(repository_paths(expanded(p))) for p in DOCS.glob("*.md")) > 100


def test_the_link_check_can_fail(tmp_path: Path) -> None:
    text = (
        "# Title\n\n## A `code` heading, with punctuation!\n\n"
        "see [the unit](systemd/nope.service), [up](../elsewhere.md), [web](https://x.y/z), "
        "[here](#a-code-heading-with-punctuation), [gone](#no-such-heading) and "
        "[the contracts](docs/contracts.md#no-such-anchor), [ok](docs/contracts.md#sizing), "
        "`reconciler/gone.py`, `templates/<name>/pod-template.yml`, `$PREFIX/README.md`\n"
        "```\n[inside a block](not/checked.md)\n```\n<!-- [nor in a comment](x.md) -->\n"
    )
    assert links(text) == [
        "systemd/nope.service",
        "../elsewhere.md",
        "#a-code-heading-with-punctuation",
        "#no-such-heading",
        "docs/contracts.md#no-such-anchor",
        "docs/contracts.md#sizing",
    ]
    assert repository_paths(text) == ["reconciler/gone.py"]
    assert missing_paths(text) == ["reconciler/gone.py"]
    assert missing_paths(
        "`tests/docs/test_settings_table.py::test_every_setting_has_a_description`, "
        "`tests/docs/test_settings_table.py::test_nothing_of_the_kind`"
    ) == ["tests/docs/test_settings_table.py::test_nothing_of_the_kind"]
    page = REPO / "docs" / "zz-link-check-probe.md"  # inside the repository, removed after
    try:
        page.write_text(text.replace("docs/contracts.md", "contracts.md"))
        problems = "\n".join(broken_links(page))
    finally:
        page.unlink()
    assert "systemd/nope.service: no such file" in problems
    assert "../elsewhere.md: no such file" in problems
    assert "#no-such-heading: zz-link-check-probe.md has no heading" in problems
    assert "contracts.md#no-such-anchor: contracts.md has no heading" in problems
    assert "#a-code-heading-with-punctuation" not in problems
    assert "#sizing" not in problems


def test_github_anchors() -> None:
    assert slug("Operators' pins") == "operators-pins"
    assert slug("0.1.0 to 0.2.0") == "010-to-020"
    assert slug("REST API (`RECONCILER_API_HOST`:`RECONCILER_API_PORT`)") == (
        "rest-api-reconciler_api_hostreconciler_api_port"
    )
    assert slug("The benchmark suite: `make bench`") == "the-benchmark-suite-make-bench"
