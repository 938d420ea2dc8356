"""MQTT: where and how to reach the broker (`connect`) and the `cm/notify` listener (`notify`).

May import: `reconciler.domain`, `reconciler.telemetry`, `reconciler.reconcile.ports` and paho.
"""
