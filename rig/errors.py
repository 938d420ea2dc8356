"""The one error the rig raises: it names the server, the command and its log file."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(data.splitlines()[-lines:])


class RigError(RuntimeError):
    """A server of the test rig could not be provisioned, started or stopped."""

    def __init__(
        self,
        server: str,
        argv: Sequence[str] | str,
        log_path: Path | str,
        problem: str,
        tail: str = "",
    ) -> None:
        self.server = server
        self.command = argv if isinstance(argv, str) else shlex.join(str(a) for a in argv)
        self.log_path = Path(log_path)
        self.problem = problem
        msg = f"rig: {server}: {problem}\n  command: {self.command}\n  log: {self.log_path}"
        if tail:
            msg += "\n  last lines of the log:\n" + "\n".join(
                "    " + ln for ln in tail.splitlines()
            )
        super().__init__(msg)
