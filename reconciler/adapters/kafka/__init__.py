"""Kafka: the `HeartBeat` monitor (`heartbeats`), how it authenticates (`config`) and why a
consumer could not bootstrap (`diagnosis`).

May import: `reconciler.domain`, `reconciler.telemetry`, `reconciler.reconcile.ports` and
kafka-python.
"""
