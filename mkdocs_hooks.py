"""MkDocs hooks (mkdocs.yml `hooks:`): links from a page to a file of the repository.

A page of docs/ may link to a file outside docs/ with a relative path
(`[alerts](../dashboards/alerts.yaml)`), which works where the Markdown is read in the
repository (GitHub, an editor). MkDocs only knows the pages and files under docs/, so it would
report such a link as missing and fail the strict build. This hook checks that the target
exists in the repository (a missing one fails the build, naming the page and the link) and
points the link at the file on GitHub (`repo_url` of mkdocs.yml, branch `main`). Links inside
docs/ are left to MkDocs, which checks them and their anchors.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

BRANCH = "main"

# An inline link or image target: `[text](target)` or `[text](target "title")`.
LINK = re.compile(r"(\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
# What is not Markdown text: fenced code blocks, inline code spans, HTML comments.
NOT_TEXT = re.compile(r"^[ \t]*(`{3,}|~{3,}).*?^[ \t]*\1[ \t]*$|`[^`\n]+`|<!--.*?-->", re.S | re.M)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def _normal(path: Path) -> Path:
    """An absolute path with `..` folded, symbolic links left as they are (the repository's
    layout is what a link names, wherever its files really are)."""
    return Path(os.path.normpath(path.absolute()))


def _targets(markdown: str, page_path: Path, docs_dir: Path) -> list[tuple[re.Match[str], str]]:
    """The links of `markdown` (the page at `page_path`) whose target leaves docs/."""
    skip = [m.span() for m in NOT_TEXT.finditer(markdown)]
    found = []
    for m in LINK.finditer(markdown):
        if any(a <= m.start() < b for a, b in skip):
            continue
        target = m.group(2)
        if SCHEME.match(target) or target.startswith(("#", "/")):
            continue
        path = _normal(page_path.parent / target.split("#", 1)[0])
        if not path.is_relative_to(_normal(docs_dir)):
            found.append((m, target))
    return found


def rewrite(markdown: str, page_path: Path, docs_dir: Path, repo: Path, repo_url: str) -> str:
    """`markdown` with every link to a repository file outside docs/ pointing at GitHub.
    Raises PluginError for a target that leaves the repository or does not exist."""
    out, last = [], 0
    where = page_path.relative_to(docs_dir) if page_path.is_relative_to(docs_dir) else page_path
    for m, target in _targets(markdown, page_path, docs_dir):
        relative, _, anchor = target.partition("#")
        path = _normal(page_path.parent / relative)
        if not path.is_relative_to(_normal(repo)):
            raise PluginError(f"docs/{where}: link {target!r} leaves the repository")
        if not path.exists():
            raise PluginError(f"docs/{where}: link {target!r}: no such file in the repository")
        kind = "tree" if path.is_dir() else "blob"
        url = f"{repo_url.rstrip('/')}/{kind}/{BRANCH}/{path.relative_to(_normal(repo)).as_posix()}"
        if anchor:
            url += f"#{anchor}"
        out.append(markdown[last : m.start(2)] + url)
        last = m.end(2)
    out.append(markdown[last:])
    return "".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    repo = Path(config.config_file_path).parent
    if not config.repo_url:
        raise PluginError("mkdocs.yml: repo_url is needed to link to files outside docs/")
    return rewrite(
        markdown, Path(page.file.abs_src_path), Path(config.docs_dir), repo, config.repo_url
    )
