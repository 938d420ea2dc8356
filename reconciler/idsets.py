"""Sets of resource ids held once: a new read of a table shares the strings of the last one.

At a million ids the strings are most of the daemon's memory (~85 bytes each); a re-read
that builds a second copy of each, while the assignment still holds the first, doubles it.
"""

from __future__ import annotations


def share(old: frozenset[str] | None, new: frozenset[str]) -> frozenset[str]:
    """`new`, made of `old`'s string objects wherever they are equal: `old` itself when
    nothing changed (so "unchanged" can be told by identity), else the ids both hold taken
    from `old` and only the added ones from `new`."""
    if old is None:
        return new
    if old is new or (len(old) == len(new) and old == new):
        return old
    gone = old - new  # CPython's difference keeps the left operand's objects
    added = new - old
    if not gone and not added:
        return old
    return (old - gone) | added if gone else old | added
