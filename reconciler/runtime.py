"""Interpreter settings for the long-running daemon process (`reconciler run` only).

- The GIL switch interval: the MQTT thread does a little work per message (parse, PUBACK)
  between socket calls; after each call it must get the GIL back from the loop thread,
  which at CPython's default of 5 ms makes a burst of row events wait on every pass.
  1 ms keeps the MQTT thread up with a broker sending thousands of messages a second.
- The garbage collector: what exists once the daemon is built (modules, clients, the
  policy) lives as long as the process; `gc.freeze()` moves it out of every later
  collection, so collections cost what the pass allocated, not the whole heap.
"""

from __future__ import annotations

import gc
import sys

SWITCH_INTERVAL_SECONDS = 0.001


def tune_for_daemon() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


def freeze_long_lived() -> None:
    """Collect once, then keep everything alive now out of later collections."""
    gc.collect()
    gc.freeze()
