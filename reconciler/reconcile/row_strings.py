"""An assignment read from ZooKeeper, held in the strings of the rows it was read beside.

Ids parsed from ZooKeeper are string objects of their own, equal to the rows' but not the
same: a standby (or a daemon just started), whose assignment is all parsed, would hold every
id twice. Once a pass knows a kind's rows and has read its assignment, each instance that
does not share the rows' strings yet is re-made of them (domain/id_strings.py: the same set,
the same version, so the plan memo and the planner see no change), and the store is told to
keep that one (`AssignmentStore.adopt`), and given the rows' strings to make the instances
it reads from then on of, as it parses them. An instance that shares them already costs a
few binary searches; only the ones read anew since do the work.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import replace

from reconciler.domain.id_strings import in_row_strings, row_strings
from reconciler.domain.model import Assignment
from reconciler.reconcile.ports import AssignmentStore


def in_rows_strings(
    store: AssignmentStore, kind: str, assignment: Assignment | None, rows: AbstractSet[str] | None
) -> Assignment | None:
    """`assignment` (as `store.read(kind)` answered it) with its ids in `rows`' strings, and
    `store` holding the same; unchanged when either is unknown."""
    strings = row_strings(rows) if rows is not None else None
    if assignment is None or strings is None:
        return assignment
    shared = in_row_strings({i: x.ids for i, x in assignment.items()}, strings)
    store.adopt(kind, shared, strings)  # also when none changed: the rows may have
    if not shared:
        return assignment
    return {i: replace(x, ids=shared[i]) if i in shared else x for i, x in assignment.items()}
