"""The one error vocabulary every adapter speaks, and the reaction each one asks for.

Three errors, three reactions (controller-runtime's "requeue with backoff", "requeue",
"do not requeue"):

- `SourceUnavailable`: the server could not be reached or answered with a transient error.
  Back off; act on nothing that depends on what it would have said ("blind").
- `NotYet`: an expected, temporary refusal (a pod name still held by the pod being deleted).
  Retry on the next pass, without backoff and without reporting it as a failure.
- `Terminal`: a bad request that no retry fixes (403, 422, a malformed object). Report it
  and do not retry it until the inputs change.

Any other exception out of an adapter is a bug or an unforeseen fault: it is reported and
retried with backoff, like `SourceUnavailable`, but logged as a failure.
"""

from __future__ import annotations


class SourceUnavailable(Exception):
    """The server behind an adapter could not be reached or answered with a transient error."""


class NotYet(Exception):
    """Expected and temporary: try again on the next pass (no backoff, not a failure)."""


class NotLeader(NotYet):
    """This daemon does not lead (or cannot prove it does): the write was not made. The
    leader makes it; a daemon that wins the election makes it on its next pass."""


class Conflict(SourceUnavailable):
    """A compare-and-set write found the data changed since it was read (another writer):
    nothing was written. Retried like `SourceUnavailable`, with backoff, after a re-read
    (controller-runtime requeues a 409 Conflict with rate-limited backoff and reads again)."""


class Terminal(Exception):
    """A request the server refused for good (4xx other than 404/409/429): do not retry."""
