"""Telemetry: the structured log (`logs`) and every Prometheus metric, defined once (`metrics`).

The foundation beside `domain`: any stage or adapter may count and log, so these two modules
sit below all of them.

May import: `reconciler.domain`, structlog and prometheus_client. Nothing else of ours.
"""
