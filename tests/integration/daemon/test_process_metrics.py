"""/metrics of a running daemon carries the process, the platform and the build, beside the
fleet's series: what an operator checks first when a daemon misbehaves (restarts, memory,
file descriptors, which version runs)."""

from __future__ import annotations

import importlib.metadata
import platform
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import running, settings_for
from tests.support.fleet import eventually, write_policy


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_carry_process_platform_and_build_info(
    zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", kube_namespace)
    with running(settings_for(zk_hosts, pg_url, kube, policy)) as d, d.client() as http:
        text = eventually(lambda: http.get("/metrics").text)
        families = _families(text)

        # ProcessCollector: this process, read from /proc.
        for name in (
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
            "process_virtual_memory_bytes",
        ):
            (sample,) = families[name].samples
            assert sample.value > 0, name
        assert families["process_cpu_seconds"].type == "counter"
        # PlatformCollector: the interpreter.
        (py,) = families["python_info"].samples
        assert py.labels["version"] == platform.python_version()
        # The build: one series, value 1, the installed package's version.
        (build,) = families["reconciler_build_info"].samples
        assert build.value == 1
        assert build.labels == {
            "version": importlib.metadata.version("reconciler"),
            "python": platform.python_version(),
        }
        # The fleet's own series are still there, from the same registry.
        assert re.search(r"^reconciler_policy_reloads_total\{", text, re.M)
        # The resident memory is this process's (the daemon runs in-process here).
        with open("/proc/self/status") as fh:
            rss_kb = int(next(ln for ln in fh if ln.startswith("VmRSS:")).split()[1])
        (rss,) = families["process_resident_memory_bytes"].samples
        assert abs(rss.value - rss_kb * 1024) < 0.5 * rss_kb * 1024
