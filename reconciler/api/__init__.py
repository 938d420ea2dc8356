"""The REST surface: the old admin UI's paths, status, probes and /metrics (`app`), operators'
scale/stop/start (`operations`), who may call (`access`, `guard`), a standby's forwarding of
writes to the leader (`forward`), the HTTP server (`server`) and the fleet page (`web`).

Reaches the daemon only through its narrow interface (request a pass, read a snapshot, set
an override). May import: `runtime`, `reconcile`, `state`, `policy`, `telemetry`, `domain`,
FastAPI, Starlette, uvicorn and httpx (to forward to the leader). Never an adapter.
"""
