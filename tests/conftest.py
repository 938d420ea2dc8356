"""The fixtures every test directory may use: the rig's real servers (tests/support/servers.py)."""

pytest_plugins = ["tests.support.servers"]
