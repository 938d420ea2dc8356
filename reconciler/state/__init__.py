"""What the daemon remembers between passes: `daemon.DaemonState` assembles it from parts, each
owned by the stage that writes it (`policy_memory`, `rows`, `sources`, `turns`, `pins`,
`requests`, `sizing`, `valves`, `pods` with `expectations` and `pod_starts`, `retries`,
`world`, `last_pass`; their shared lock in `part`), and the read side gets an immutable
snapshot of it (`snapshot`).

May import: `reconciler.domain`, `reconciler.telemetry`, `reconciler.policy`,
`reconciler.rules`. No client library, no adapter.
"""
