"""Interpreter settings for the long-running daemon process (`reconciler run` only).

- The GIL switch interval: the MQTT thread does a little work per message (parse, PUBACK)
  between socket calls; after each call it must get the GIL back from the loop thread,
  which at CPython's default interval makes a burst of row events wait on every pass. A
  shorter one (`SWITCH_INTERVAL_SECONDS`) keeps the MQTT thread up with a broker sending
  thousands of messages a second.
- glibc's allocator: an instance's set of ids is a large block; past the first free of such
  a block glibc raises its mmap threshold (dynamically) and carves later ones from heaps it
  rarely returns, one per thread, so re-planning a large fleet once leaves the process far
  larger than what is alive. A fixed threshold (`MMAP_THRESHOLD_BYTES`) and two arenas keep
  freed sets going back to the system.
- The garbage collector: what exists once the daemon is built (modules, clients, the
  policy) lives as long as the process; `gc.freeze()` moves it out of every later
  collection, so collections cost what the pass allocated, not the whole heap.
"""

from __future__ import annotations

import ctypes
import gc
import sys

SWITCH_INTERVAL_SECONDS = 0.001


# mallopt(3) parameters
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 128 * 1024


def tune_for_daemon() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    _tune_glibc_malloc()


def _tune_glibc_malloc() -> None:
    """Best effort: only where the C library is glibc (not musl, not macOS)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        libc.mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass


def freeze_long_lived() -> None:
    """Collect once, then keep everything alive now out of later collections."""
    gc.collect()
    gc.freeze()
