"""The `reconciler` command: run, plan, validate, status (`main`), scale/stop/start (`pins`) and
the checks made before anything is touched (`preflight`).

The top of the house: may import every package of ours.
"""
