"""The test rig: real servers (ZooKeeper, Kafka, Mosquitto, PostgreSQL, Kubernetes, Prometheus)
on free 127.0.0.1 ports with their data in temp dirs. See docs/development.md, "The test rig"."""

from rig.errors import RigError

__all__ = ["RigError"]
