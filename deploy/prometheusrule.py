"""deploy/kubernetes/prometheusrule.yaml from dashboards/alerts.yaml: the same rule groups, as
a Prometheus Operator PrometheusRule. One source, so the two cannot drift:

    python deploy/prometheusrule.py            print it
    python deploy/prometheusrule.py --write    write deploy/kubernetes/prometheusrule.yaml
    python deploy/prometheusrule.py --check    exit 1 when the file is not what this prints

The rule file's text (comments and all) becomes the manifest's `spec`, indented: a
PrometheusRule's spec.groups has exactly the rule file's format.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "dashboards" / "alerts.yaml"
TARGET = REPO / "deploy" / "kubernetes" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from dashboards/alerts.yaml by `make manifests` (deploy/prometheusrule.py): edit
# that file, not this one. The alerts for the Prometheus Operator; it is not part of
# kustomization.yaml because it needs the operator's CRD:
#   kubectl apply -f deploy/kubernetes/prometheusrule.yaml
# Add the label your Prometheus' ruleSelector matches (e.g. release: prometheus) if it has one.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: reconciler
  namespace: iota
  labels:
    app.kubernetes.io/name: reconciler
    app.kubernetes.io/part-of: iota
spec:
"""


def render(source: str) -> str:
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = [f"  {line}" if line else "" for line in lines[start:]]
    return HEADER + "\n".join(body) + "\n"


def main(argv: list[str], target: Path = TARGET) -> int:
    text = render(SOURCE.read_text())
    if argv == ["--write"]:
        target.write_text(text)
    elif argv == ["--check"]:
        if not target.exists() or target.read_text() != text:
            print(f"{target} is stale: run `make manifests`", file=sys.stderr)
            return 1
    elif not argv:
        sys.stdout.write(text)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
