"""Chaos on the rig: faults and row churn against a real `reconciler run`, judged by an
invariant checker written apart from the planner (invariants.py), pod deletions judged against
the instances the daemon wrote to ZooKeeper (podwatch.py, history.py).

The daemon reaches every server through a fault proxy of its own (links.py), so network
faults (netfaults.py: partitions, slow links, the split brain) cut it alone. Its wall clock
alone can be stepped (clock.py, libfaketime) and its passes wedged (a failpoint): timefaults.py.

`python -m tests.chaos --seed N --minutes M` runs a seedable mix (see __main__.py);
tests/integration/daemon/test_faults.py injects each fault of faults.py once.
"""
