"""The running daemon: the loop that decides when a pass runs (`loop`), whether it makes
progress (`liveness`), systemd notifications (`systemd`), the process's interpreter settings
(`process`), the read side that renders status (`status`), the watched policy file
(`policy_watch`) and a test hook that wedges a pass on purpose (`failpoints`).

May import: everything below it (`reconcile`, `state`, `rules`, `policy`, `telemetry`,
`domain`). Never an adapter (`reconciler.wiring` hands them in as ports), no client library.
"""
