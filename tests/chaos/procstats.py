"""Samples every `reconciler run` process on the machine: for a soak, the daemon's memory,
open files and threads from its start to its end, beside `python -m tests.chaos`.

    .venv/bin/python -m tests.chaos.procstats --every 30 > procstats.tsv

One line per process per sample: time, pid, seconds since the process started, VmRSS and
VmHWM (KiB), threads, open file descriptors. A daemon the chaos run kills and starts again is
a new pid; `--summary FILE` prints each pid's first and last sample and its largest RSS.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

FIELDS = ("time", "pid", "age_s", "rss_kib", "hwm_kib", "threads", "fds")


def _daemons() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            len(argv) >= 2
            and argv[-2:] == [b"run", b""]
            and any(a.endswith(b"reconciler") for a in argv)
        ):
            yield int(entry.name)


def sample(pid: int) -> dict[str, str] | None:
    proc = Path(f"/proc/{pid}")
    try:
        status = dict(
            line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line
        )
        fds = len(os.listdir(proc / "fd"))
        start_ticks = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None  # gone while we looked
    age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    return {
        "time": time.strftime("%H:%M:%S"),
        "pid": str(pid),
        "age_s": f"{age:.0f}",
        "rss_kib": status["VmRSS"].split()[0],
        "hwm_kib": status["VmHWM"].split()[0],
        "threads": status["Threads"].strip(),
        "fds": str(fds),
    }


def summary(path: Path) -> None:
    rows = [
        dict(zip(FIELDS, line.split("\t"), strict=True))
        for line in path.read_text().splitlines()[1:]
    ]
    by_pid: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_pid.setdefault(row["pid"], []).append(row)
    print(
        "pid\tfirst\tlast\tage_s\trss_mib first->last (max)\tthreads first->last\tfds first->last"
    )
    for pid, seen in sorted(by_pid.items(), key=lambda kv: kv[1][0]["time"]):
        a, b = seen[0], seen[-1]
        top = max(int(r["rss_kib"]) for r in seen) / 1024
        print(
            f"{pid}\t{a['time']}\t{b['time']}\t{b['age_s']}\t"
            f"{int(a['rss_kib']) / 1024:.1f}->{int(b['rss_kib']) / 1024:.1f} ({top:.1f})\t"
            f"{a['threads']}->{b['threads']}\t{a['fds']}->{b['fds']}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--summary", type=Path, help="summarise a file this wrote, and exit")
    args = ap.parse_args(argv)
    if args.summary:
        summary(args.summary)
        return 0
    print("\t".join(FIELDS), flush=True)
    while True:
        for pid in _daemons():
            row = sample(pid)
            if row is not None:
                print("\t".join(row[f] for f in FIELDS), flush=True)
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
