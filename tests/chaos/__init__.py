"""Chaos on the rig: faults and row churn against a real `reconciler run`, judged by an
invariant checker written apart from the planner (invariants.py), pod deletions judged against
the instances the daemon wrote to ZooKeeper (podwatch.py, history.py).

`python -m tests.chaos --seed N --minutes M` runs a seedable mix (see __main__.py);
tests/integration/daemon/test_faults.py injects each fault once.
"""
