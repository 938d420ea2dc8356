"""Reading policy.yaml: strict YAML (`safe_yaml`), the schema (`schema`), every problem named
with its line (`problems`), and the pod templates the kinds point at (`templates`).

Apart from the schema so that the rules, which read `KindPolicy`, never import a parser.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from pydantic import ValidationError

from reconciler.domain.podspec import PodTemplate
from reconciler.policy import safe_yaml
from reconciler.policy.problems import PolicyError, PolicyProblem, problem
from reconciler.policy.schema import KindPolicy, LoadedPolicy, Policy
from reconciler.policy.templates import load_pod_template


def load_policy(path: Path | str) -> LoadedPolicy:
    """Read and validate policy.yaml; raise PolicyError listing every problem with its line."""
    path = Path(path)
    try:
        raw = safe_yaml.read_bounded(path)
    except OSError as e:
        raise PolicyError(path, [PolicyProblem("", None, f"cannot read: {e.strerror}")]) from e
    except safe_yaml.UnsafeYaml as e:
        raise PolicyError(path, [PolicyProblem("", None, e.problem)]) from e
    policy = parse_policy(raw, path)
    loaded = LoadedPolicy(policy, path.resolve(), hashlib.sha256(raw).hexdigest())
    missing = [
        PolicyProblem(f"kinds.{k}.template", None, f"no such file: {loaded.template_path(k)}")
        for k in policy.kinds
        if not loaded.template_path(k).is_file()
    ]
    if missing:
        raise PolicyError(path, missing)
    return loaded


def parse_policy(raw: bytes | str, path: Path | str = "<policy>") -> Policy:
    """Validate policy.yaml's text; PolicyError lists every problem with its line."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        doc = safe_yaml.load(text)
    except safe_yaml.UnsafeYaml as e:
        raise PolicyError(path, [PolicyProblem("", e.line, e.problem)]) from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(path, [PolicyProblem("", line, f"not valid YAML: {e}")]) from e
    problems = [
        PolicyProblem(
            ".".join(d.path),
            d.line,
            f"duplicate key: first at line {d.first_line}, again at line {d.line} "
            "(YAML would keep only the last one)",
        )
        for d in doc.duplicates
    ]
    if not isinstance(doc.data, dict):
        problems.append(PolicyProblem("", 1, "the policy must be a YAML mapping"))
        raise PolicyError(path, problems)
    try:
        # strict: YAML has types, so "30", true or 30.0 for an integer is a mistake to report,
        # not a value to coerce (camelCase aliases are unaffected).
        policy = Policy.model_validate(doc.data, strict=True)
    except ValidationError as e:
        problems += [problem(err, doc.root, Policy, KindPolicy) for err in e.errors()]
    if problems:
        raise PolicyError(path, sorted(problems, key=lambda p: p.line or 0))
    return policy


def load_policy_and_templates(path: Path | str) -> tuple[LoadedPolicy, dict[str, PodTemplate]]:
    """policy.yaml and every kind's pod template, validated together: the one way the daemon,
    `validate` and the tests load a policy. Raises PolicyError or TemplateError."""
    loaded = load_policy(path)
    templates = {
        kind: load_pod_template(kind, p.namespace, p.instance_name, loaded.template_path(kind))
        for kind, p in loaded.policy.kinds.items()
    }
    return loaded, templates
