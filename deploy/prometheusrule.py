"""deploy/kubernetes/prometheusrule.yaml alone: the alerts of dashboards/alerts.yaml as a
Prometheus Operator PrometheusRule, rendered from the chart with the other manifests
(deploy/render.py, `make manifests`). Its spec is the rule file's text, comments and all.

    python deploy/prometheusrule.py            print it
    python deploy/prometheusrule.py --write    write deploy/kubernetes/prometheusrule.yaml
    python deploy/prometheusrule.py --check    exit 1 when the file is not what this prints

It renders from the chart's copy of the rule file as it should be (not as it is on disk), so
an edit of dashboards/alerts.yaml makes the manifest stale until `make manifests`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import render  # deploy/ is not a package: found through the sys.path entry above

TARGET = render.K8S / "prometheusrule.yaml"


def text() -> str:
    return render.manifests()[TARGET].decode()


def main(argv: list[str], target: Path = TARGET) -> int:
    if argv == ["--write"]:
        target.write_text(text())
    elif argv == ["--check"]:
        if not target.exists() or target.read_text() != text():
            print(f"{target} is stale: run `make manifests`", file=sys.stderr)
            return 1
    elif not argv:
        sys.stdout.write(text())
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
