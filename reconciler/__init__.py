"""reconciler: keeps a fleet of IoT worker pods sharded, sized and healthy from one policy.yaml.

The packages follow the data flow of a pass (docs/architecture.md draws it):

- `domain`: the values every stage speaks in (ids, the observed world, operations, errors).
- `telemetry`: the structured log and every Prometheus metric.
- `policy` and `config`: what operators declare (policy.yaml) and where the servers are.
- `rules`: pure rules, one home each (sizing, growth, write order, valve, scaling, rollout).
- `state`: what the daemon remembers between passes, owned by the stages that write it.
- `reconcile`: one pass as named stages, and the ports it reaches the world through.
- `runtime`: the loop that decides when a pass runs, liveness, systemd, the read side.
- `adapters`: ZooKeeper, Kubernetes, SQL, MQTT and Kafka: the only code that talks to servers.
- `api` and `cli`: the surfaces operators and the old admin UI use.
- `wiring`: settings -> adapters -> ports -> loop, every collaborator given at construction.

May import: nothing here; each package's docstring says what it may import, and
`lint-imports` (the contracts in pyproject.toml) checks it.
"""
