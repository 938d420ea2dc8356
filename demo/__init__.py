"""`make demo`: the daemon on the rig's real servers with a simulated fleet (demo/run.py)."""
