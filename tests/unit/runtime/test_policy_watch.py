"""policy.yaml edits reach the loop: plain edits, editor renames, ConfigMap symlink swaps."""

from __future__ import annotations

import os
import queue
from pathlib import Path

import pytest

from reconciler.runtime.loop import Daemon, Wake


def next_wake(daemon: Daemon, timeout: float = 5.0) -> Wake:
    return daemon._queue.get(timeout=timeout)


@pytest.fixture
def configmap(tmp_path: Path) -> Path:
    """A folder laid out as the kubelet lays out a ConfigMap volume."""
    (tmp_path / "..2026_01").mkdir()
    (tmp_path / "..2026_01/policy.yaml").write_text("tickSeconds: 30\n")
    os.symlink("..2026_01", tmp_path / "..data")
    os.symlink("..data/policy.yaml", tmp_path / "policy.yaml")
    return tmp_path


def swap(folder: Path, version: str, text: str) -> None:
    """The kubelet's atomic update: new timestamped folder, then rename a new ..data link."""
    (folder / version).mkdir()
    (folder / version / "policy.yaml").write_text(text)
    os.symlink(version, folder / "..data_tmp")
    os.rename(folder / "..data_tmp", folder / "..data")


def test_every_configmap_update_wakes_the_loop_not_only_the_first(configmap: Path) -> None:
    daemon = Daemon(configmap / "policy.yaml", ports=None)  # type: ignore[arg-type]
    daemon.watch_policy_file()
    try:
        swap(configmap, "..2026_02", "tickSeconds: 20\n")
        assert next_wake(daemon).reason == "policy"
        while True:  # drain the rest of that update's events
            try:
                daemon._queue.get(timeout=0.5)
            except queue.Empty:
                break
        swap(configmap, "..2026_03", "tickSeconds: 10\n")
        assert next_wake(daemon).reason == "policy"
        assert (configmap / "policy.yaml").read_text() == "tickSeconds: 10\n"
    finally:
        daemon.stop()


def test_an_editor_replacing_the_file_wakes_the_loop(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("tickSeconds: 30\n")
    daemon = Daemon(policy, ports=None)  # type: ignore[arg-type]
    daemon.watch_policy_file()
    try:
        (tmp_path / ".policy.yaml.swp").write_text("tickSeconds: 5\n")
        os.replace(tmp_path / ".policy.yaml.swp", policy)
        assert next_wake(daemon).reason == "policy"
    finally:
        daemon.stop()


def test_other_files_in_the_folder_do_not_wake_the_loop(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("tickSeconds: 30\n")
    daemon = Daemon(policy, ports=None)  # type: ignore[arg-type]
    daemon.watch_policy_file()
    try:
        (tmp_path / "notes.txt").write_text("hello")
        with pytest.raises(queue.Empty):
            daemon._queue.get(timeout=1.5)
    finally:
        daemon.stop()
