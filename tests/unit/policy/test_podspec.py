from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from reconciler.domain.podspec import (
    KIND_LABEL,
    MANAGED_BY_LABEL,
    PodTemplate,
    managed_selector,
    parse_quantity,
    pod_requests,
    render_pod,
)
from reconciler.policy.templates import TemplateError, load_pod_template

ROOT = Path(__file__).resolve().parents[3]
DAC = ROOT / "templates" / "iota-dac" / "pod-template.yml"
RULES = ROOT / "templates" / "iota-rules-engine" / "pod-template.yml"


def test_render_sets_spec_fields_and_labels() -> None:
    t = load_pod_template("Thing", "iota", "iota-dac", DAC)
    m = render_pod(t, 7)
    assert m["metadata"]["name"] == "iota-dac-7"
    assert m["metadata"]["namespace"] == "iota"
    labels = m["metadata"]["labels"]
    assert labels["instanceId"] == "7"
    assert labels[MANAGED_BY_LABEL] == "reconciler"
    assert labels[KIND_LABEL] == "Thing"
    assert labels["app"] == "iota-dac"  # template labels are kept
    assert m["spec"]["containers"][0]["env"][0] == {"name": "INSTANCE_ID", "value": "7"}


def test_render_does_not_mutate_template() -> None:
    t = load_pod_template("Rule", "ns2", "iota-rules-engine", RULES)
    a = render_pod(t, 1)
    b = render_pod(t, 2)
    assert a["metadata"]["name"] == "iota-rules-engine-1"
    assert b["metadata"]["name"] == "iota-rules-engine-2"
    assert a["metadata"]["namespace"] == "ns2"
    assert t.manifest["metadata"]["name"] == "iota-rules-engine-0"
    assert t.manifest["spec"]["containers"][0]["env"][0]["value"] == "0"
    assert KIND_LABEL not in t.manifest["metadata"]["labels"]


def _minimal_template(**fields: object) -> PodTemplate:
    """A Thing template of one container with an unset `I` env var, plus `fields`."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {"containers": [{"name": "c", "image": "x", "env": [{"name": "I"}]}]},
        **fields,
    }
    return PodTemplate("Thing", "iota", "w", manifest)


def test_render_adds_metadata_and_labels_when_absent() -> None:
    t = _minimal_template()
    m = render_pod(t, 0)
    assert m["metadata"]["name"] == "w-0"
    assert m["metadata"]["labels"]["instanceId"] == "0"
    assert m["spec"]["containers"][0]["env"][0]["value"] == "0"


def test_render_drops_server_fields() -> None:
    t = _minimal_template(
        metadata={"uid": "u", "resourceVersion": "5", "labels": None},
        status={"phase": "Running"},
    )
    m = render_pod(t, 3)
    assert "uid" not in m["metadata"] and "resourceVersion" not in m["metadata"]
    assert "status" not in m


def test_selector() -> None:
    assert managed_selector("Thing") == (
        "app.kubernetes.io/managed-by=reconciler,reconciler.iota/kind=Thing"
    )


def test_requests_of_shipped_templates() -> None:
    t = load_pod_template("Thing", "iota", "iota-dac", DAC)
    assert pod_requests(t) == (250.0, 256 * 2**20)
    t = load_pod_template("Rule", "iota", "iota-rules-engine", RULES)
    assert pod_requests(t) == (200.0, 192 * 2**20)


def test_requests_sum_containers_and_init_max() -> None:
    t = PodTemplate(
        "Thing",
        "iota",
        "w",
        {
            "kind": "Pod",
            "spec": {
                "containers": [
                    {"resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                    {"resources": {"requests": {"cpu": 1}}},
                    {"resources": {}},
                    {},
                ],
                "initContainers": [{"resources": {"requests": {"cpu": "2", "memory": "1M"}}}],
            },
        },
    )
    # regular: 1100m, 1Gi; init asks 2000m (more) and 1M (less)
    assert pod_requests(t) == (2000.0, float(2**30))


def test_requests_none() -> None:
    t = PodTemplate("Thing", "iota", "w", {"kind": "Pod", "spec": {"containers": [{}]}})
    assert pod_requests(t) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("250m", Decimal("0.25")),
        ("1", Decimal(1)),
        ("0.5", Decimal("0.5")),
        (".5", Decimal("0.5")),
        ("256Mi", Decimal(256 * 2**20)),
        ("1Ki", Decimal(1024)),
        ("1Gi", Decimal(2**30)),
        ("1G", Decimal(10**9)),
        ("1k", Decimal(1000)),
        ("1M", Decimal(10**6)),
        ("2T", Decimal(2 * 10**12)),
        ("1P", Decimal(10**15)),
        ("1E", Decimal(10**18)),
        ("1Ei", Decimal(2**60)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("5e-3", Decimal("0.005")),
        ("100n", Decimal("1e-7")),
        ("10u", Decimal("1e-5")),
        ("+1", Decimal(1)),
        ("1.5Gi", Decimal("1.5") * 2**30),
        (2, Decimal(2)),
        (0.5, Decimal("0.5")),
        (" 128974848 ", Decimal(128974848)),
    ],
)
def test_parse_quantity(q: str | int | float, expected: Decimal) -> None:
    assert parse_quantity(q) == expected


def test_parse_quantity_millicores_exact() -> None:
    assert parse_quantity("100m") * 1000 == 100


@pytest.mark.parametrize("q", ["", "m", "1mi", "1MB", "abc", "1 Gi", "1e", "--1", "1.2.3", True])
def test_parse_quantity_rejects(q: object) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(q)  # type: ignore[arg-type]


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    cases = {
        "notpod.yml": "apiVersion: v1\nkind: Deployment\nspec: {}\n",
        "list.yml": "- a\n- b\n",
        "nocontainers.yml": "kind: Pod\nspec: {containers: []}\n",
        "noenv.yml": "kind: Pod\nspec: {containers: [{name: c}]}\n",
        "emptyenv.yml": "kind: Pod\nspec: {containers: [{name: c, env: []}]}\n",
        "bad.yml": "kind: Pod\nspec: [\n",
    }
    for name, text in cases.items():
        f = tmp_path / name
        f.write_text(text)
        with pytest.raises(TemplateError, match=re.escape(str(f))):
            load_pod_template("Thing", "iota", "w", f)
    with pytest.raises(TemplateError, match=re.escape("missing.yml")):
        load_pod_template("Thing", "iota", "w", tmp_path / "missing.yml")
