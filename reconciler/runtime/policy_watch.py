"""Where the policy in force comes from: policy.yaml, its file watch and SIGHUP reloads.

A broken edit never replaces a good policy: the last good one stays in force and the error
is kept for `status`, /readyz and the log. The watch follows the folder, not the file, so
editors' renames and ConfigMap symlink swaps are seen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from reconciler.domain.podspec import PodTemplate
from reconciler.policy.loader import load_policy_and_templates
from reconciler.policy.problems import PolicyError
from reconciler.policy.templates import TemplateError
from reconciler.state.daemon import DaemonState
from reconciler.telemetry import metrics
from reconciler.telemetry.logs import log


def reload_policy(
    state: DaemonState,
    path: Path,
    why: str,
    on_templates: Callable[[dict[str, PodTemplate]], None],
) -> bool:
    """Load `path` into `state`; True when a new policy is now in force.

    On any error the last good policy stays and the error is kept. The same bytes again (an
    editor's touch) change nothing; `on_templates` hears of every new policy's templates.
    """
    in_force = state.policy  # this stage's own part of the state
    try:
        loaded, templates = load_policy_and_templates(path)
    except (PolicyError, TemplateError) as e:
        in_force.rejected(str(e))
        metrics.POLICY_RELOADS.labels("failed").inc()
        kept = in_force.loaded.sha256[:12] if in_force.loaded else None
        log.error("policy rejected", why=why, error=str(e), keeping=kept)
        return False
    previous = in_force.loaded
    if previous is not None and in_force.is_same(loaded, templates):
        in_force.rejected(None)
        if why == "SIGHUP":  # asked for explicitly: say so (`systemctl reload` feedback)
            log.info("policy unchanged", why=why, sha256=loaded.sha256[:12])
        return False
    metrics.POLICY_RELOADS.labels("ok").inc()
    if previous is not None and previous.sha256 != loaded.sha256:
        metrics.POLICY_INFO.remove(previous.sha256)
    metrics.POLICY_INFO.labels(loaded.sha256).set(1)
    changed = _changed_templates(in_force.templates, templates) if previous is not None else []
    # A template edit alone is not a policy edit: REST overrides stay
    # (docs/operations.md "The REST API").
    state.policy_accepted(
        loaded, templates, keep_overrides=previous is not None and previous.sha256 == loaded.sha256
    )
    on_templates(templates)
    if changed:
        log.info("pod templates changed: their pods roll", why=why, kinds=changed)
    log.info(
        "policy loaded",
        why=why,
        sha256=loaded.sha256[:12],
        kinds=sorted(loaded.policy.kinds),
        tick_seconds=loaded.policy.tick_seconds,
    )
    return True


def _changed_templates(old: dict[str, PodTemplate], templates: dict[str, PodTemplate]) -> list[str]:
    return sorted(k for k, t in templates.items() if k not in old or old[k].manifest != t.manifest)


def watch_policy_file(
    path: Path,
    on_change: Callable[[], None],
    stop: threading.Event,
    templates: list[Path] | None = None,
) -> threading.Thread:
    """Call `on_change` whenever `path` or one of the `templates` changes (watchfiles), from
    a daemon thread. Templates named later by a policy edit are watched after a restart;
    SIGHUP re-reads them all in any case."""
    from watchfiles import watch

    # Not resolved: in a ConfigMap volume policy.yaml is a symlink into a `..<timestamp>`
    # folder that every update replaces (by swapping the `..data` link); the resolved path
    # would point at a folder that no longer exists after the first update.
    targets = [path.absolute(), *(t.absolute() for t in templates or [])]
    names = {t.name for t in targets}
    folders = sorted({t.parent for t in targets if t.parent.is_dir()})

    def run() -> None:
        # Watch the folders, not the files: editors and ConfigMap updates replace a file
        # (rename or symlink swap), which a watch on the old inode would miss.
        for changes in watch(
            *folders,
            stop_event=stop,
            debounce=200,
            rust_timeout=1000,
            yield_on_timeout=False,
        ):
            if any(Path(p).name in names or Path(p).name.startswith("..") for _, p in changes):
                on_change()

    thread = threading.Thread(target=run, name="policy-watch", daemon=True)
    thread.start()
    return thread
