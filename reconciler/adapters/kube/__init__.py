"""Kubernetes: the managed pods, their watch, their CPU/memory usage and the nodes' room.

The only package that talks to the apiserver (through the official `kubernetes` client).
Everything is returned as `reconciler.domain.model` types, and errors come out in the vocabulary
of `reconciler.domain.errors` (see `client`). One job per module:

- `client`: the ApiClient from the credentials, calls, and the mapping of failures to errors.
- `convert`: the API's JSON -> `reconciler.domain.model` types (pure, no network).
- `pods`: `KubePods`, create/delete/list of the managed pods (level-triggered).
- `usage`: pod CPU/memory from metrics.k8s.io and the nodes' room (methods of `KubePods`).
- `watch`: `PodWatcher`, list + watch per kind, with a cache of each kind's pods, and
  `PodWatch`, the watcher of the policy in force (the pass's pod cache).

May import: `reconciler.domain`, `reconciler.telemetry` and the kubernetes client.
"""
