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
        raise PolicyError(path, [syntax_problem(e)]) from e
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


def syntax_problem(error: yaml.YAMLError) -> PolicyProblem:
    """A YAML syntax error at the file's own line and column, in PyYAML's words but without
    its "<unicode string>" source name. An unclosed quote or bracket is noticed only where
    the text runs out (often the end of the file): then the line named is the one where the
    quote or bracket opened, where the fix goes. Both places are in the message."""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    at = getattr(error, "problem_mark", None)
    began = getattr(error, "context_mark", None)
    context = getattr(error, "context", None) or ""
    places = []
    if began is not None and context:
        places.append(f"{context} at line {began.line + 1}, column {began.column + 1}")
    if at is not None:
        places.append(f"noticed at line {at.line + 1}, column {at.column + 1}")
    message = f"not valid YAML: {problem}" + (f" ({', '.join(places)})" if places else "")
    unclosed = context.startswith(("while scanning a quoted", "while parsing a flow"))
    mark = began if began is not None and unclosed else at
    if mark is None:
        return PolicyProblem("", None, message)
    return PolicyProblem("", mark.line + 1, message, mark.column + 1)


def load_policy_and_templates(path: Path | str) -> tuple[LoadedPolicy, dict[str, PodTemplate]]:
    """policy.yaml and every kind's pod template, validated together: the one way the daemon,
    `validate` and the tests load a policy. Raises PolicyError or TemplateError."""
    loaded = load_policy(path)
    templates = {
        kind: load_pod_template(kind, p.namespace, p.instance_name, loaded.template_path(kind))
        for kind, p in loaded.policy.kinds.items()
    }
    return loaded, templates
