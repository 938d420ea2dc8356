"""ZooKeeper: the assignment workers read, the operators' pins and the leader election.

`session` (connection, bounded calls, fenced transactions) is what every other module here
is composed from: its objects are given a `ZkSession` and hold it, as kazoo's recipes hold
a client. `layout` (paths and JSON of docs/contracts.md "ZooKeeper layout") and
`instance_write` (the ops of one instance's write) are pure; `read` and `store` (the
assignment), `cache` (the assignment kept true by watches), `pins`, `election`, `access`
(digest login, ACLs, TLS), `acl_align` (existing nodes' ACLs brought in line) and `acl_open`
(the daemon's ACLs undone for a rollback).

May import: `reconciler.domain`, `reconciler.telemetry`, `reconciler.reconcile.ports` and kazoo.
"""
