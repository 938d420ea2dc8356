"""What the daemon remembers between passes (`daemon`), the read side's immutable snapshot of it
(`snapshot`), and the memories stages keep: pod expectations (`expectations`), pod starts
(`pod_starts`) and per-operation retries (`retries`).

May import: `reconciler.domain`, `reconciler.telemetry`, `reconciler.policy`,
`reconciler.rules`. No client library, no adapter.
"""
