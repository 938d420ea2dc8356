"""The daemon as `reconciler run` starts it, in-process: `app.build` from Settings, the loop in
a thread, the REST API on a free port. For tests that talk to it over HTTP (REST, Prometheus).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from reconciler.api.access import BrowserAccess
from reconciler.api.app import create_app
from reconciler.api.server import ApiServer
from reconciler.config.settings import Settings
from reconciler.runtime.control import Control
from reconciler.wiring import App, build


@dataclass
class Running:
    app: App
    server: ApiServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def target(self) -> str:
        """host:port, as Prometheus scrapes it."""
        return f"127.0.0.1:{self.server.port}"

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=90, **kw)


# A write to a daemon that knows no leader yet gets 503 (reconciler/api/forward.py): tests that
# write right after start wait for the election to settle, for at most this long (a test that
# starts with ZooKeeper down pays it once).
LEADER_WAIT_SECONDS = 5.0


def _await_a_leader(app: App) -> None:
    election = app.election
    if election is None:
        return
    deadline = time.monotonic() + LEADER_WAIT_SECONDS
    while election.leader() is None and time.monotonic() < deadline:
        time.sleep(0.05)


def settings_for(
    zk_hosts: str,
    db_url: str,
    kube: Any,
    policy: Path,
    *,
    mqtt: str = "",
    kafka: str = "",
    token: str | None = None,
    **extra: Any,
) -> Settings:
    """Settings for an in-process daemon on the rig; `extra`: any other Settings field."""
    return Settings(
        policy_path=policy,
        zk_hosts=zk_hosts,
        database_url=db_url,
        kube_url=kube.url,
        kube_token=kube.token,
        kube_ca_file=str(kube.ca_file),
        mqtt_brokers=mqtt,
        mqtt_client_id=f"reconciler-{uuid.uuid4().hex[:8]}",  # one session per daemon
        mqtt_reconnect_seconds=1.0,
        kafka_bootstrap=kafka,
        api_host="127.0.0.1",
        api_port=0,
        api_token=token,
        _env_file=None,
        **extra,
    )


@contextmanager
def running(settings: Settings) -> Iterator[Running]:
    app = build(settings)
    token = settings.api_token.get_secret_value() if settings.api_token else None
    access = BrowserAccess.from_settings(settings)
    server = ApiServer(
        create_app(Control(app.daemon), token, access), settings.api_host, settings.api_port
    )
    thread = threading.Thread(target=app.daemon.run, name="daemon", daemon=True)
    try:
        server.start()
        app.daemon.watch_policy_file()
        thread.start()
        _await_a_leader(app)
        yield Running(app, server, thread)
    finally:
        app.daemon.stop()
        thread.join(timeout=30)
        server.stop()
        app.close()
