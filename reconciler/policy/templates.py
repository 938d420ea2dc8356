"""Pod template files: read with the YAML limits of `safe_yaml` and checked before use.

A template the daemon cannot render a worker from is refused with the file and the reason,
so a bad policy edit keeps the last good policy (`reconciler/runtime/policy_watch.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from reconciler.domain.podspec import PodTemplate
from reconciler.policy import safe_yaml


class TemplateError(ValueError):
    """A pod template file is unusable; the message names the file and what is wrong."""


def load_pod_template(
    kind: str, namespace: str, instance_name: str, path: str | Path
) -> PodTemplate:
    """Load and check a template; errors name the file so a bad policy is easy to fix."""
    p = Path(path)
    try:
        doc = safe_yaml.load(safe_yaml.read_bounded(p).decode("utf-8"))
    except OSError as e:
        raise TemplateError(f"pod template {p}: cannot read: {e}") from e
    except UnicodeDecodeError as e:
        raise TemplateError(f"pod template {p}: not UTF-8 text: {e}") from e
    except safe_yaml.UnsafeYaml as e:
        at = f"line {e.line}: " if e.line else ""
        raise TemplateError(f"pod template {p}: {at}{e.problem}") from e
    except yaml.YAMLError as e:
        raise TemplateError(f"pod template {p}: invalid YAML: {e}") from e
    if doc.duplicates:
        dup = doc.duplicates[0]
        raise TemplateError(
            f"pod template {p}: line {dup.line}: duplicate key {'.'.join(dup.path)} "
            f"(first at line {dup.first_line}; YAML would keep only the last one)"
        )
    manifest = doc.data
    _check_manifest(p, manifest)
    return PodTemplate(
        kind=kind, namespace=namespace, instance_name=instance_name, manifest=manifest
    )


def _check_manifest(p: Path, m: Any) -> None:
    if not isinstance(m, dict):
        raise TemplateError(f"pod template {p}: expected a mapping, got {type(m).__name__}")
    if m.get("kind") != "Pod":
        raise TemplateError(f"pod template {p}: kind is {m.get('kind')!r}, expected 'Pod'")
    spec = m.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise TemplateError(f"pod template {p}: spec.containers[0] is missing")
    env = containers[0].get("env")
    # docs/contracts.md "Pods": the worker reads its instance id from containers[0].env[0];
    # without it every worker would serve the same shard, so refuse the template rather than
    # guess.
    if not isinstance(env, list) or not env or not isinstance(env[0], dict):
        raise TemplateError(f"pod template {p}: spec.containers[0].env[0] is missing")
    meta = m.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise TemplateError(f"pod template {p}: metadata is not a mapping")
