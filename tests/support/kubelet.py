"""The kubelet's side of a pod's volumes, for tests on a machine without one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


class KubeletConfigMapVolume:
    """A ConfigMap volume laid out as the kubelet's atomic writer lays it out: the items in a
    `..<timestamp>` folder, `..data` a link to it, a link per top-level name into `..data`;
    an update writes a new folder, renames a new `..data` link over the old one, then removes
    the old folder."""

    def __init__(self, root: Path, items: dict[str, str]) -> None:
        self.root = root
        self.version = 0
        root.mkdir(parents=True)
        self.update(items)

    def update(self, items: dict[str, str]) -> None:
        self.version += 1
        folder = f"..2026_12_07_12_00_{self.version:02d}.{self.version:09d}"
        for rel, text in items.items():
            (self.root / folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.root / folder / rel).write_text(text)
        old = os.readlink(self.root / "..data") if (self.root / "..data").is_symlink() else None
        os.symlink(folder, self.root / "..data_tmp")
        os.rename(self.root / "..data_tmp", self.root / "..data")
        for top in {Path(rel).parts[0] for rel in items}:
            if not (self.root / top).is_symlink():
                os.symlink(f"..data/{top}", self.root / top)
        if old:
            shutil.rmtree(self.root / old)
