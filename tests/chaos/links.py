"""The daemon's network links in the chaos run: a `FaultProxy` (tests/support/netproxy.py)
between the daemon and each server, while the checker, the churn and the workers' heartbeats
connect directly, so a network fault cuts the daemon alone.

Kafka clients bootstrap from one address and then connect to the broker address the metadata
advertises, which would bypass a proxy on the bootstrap alone. `ProxiedKafka` gives the rig's
broker a second listener, DAEMON, on a port of its own, advertised as the proxy's port: a
client that bootstraps through the proxy is told to come back through the proxy, and the
PLAINTEXT listener the heartbeats use stays direct.
"""

from __future__ import annotations

import re
from pathlib import Path

from rig.process import free_port
from rig.servers import Kafka
from tests.support.netproxy import FaultProxy


class ProxiedKafka(Kafka):
    """The rig's Kafka with a DAEMON listener reached through `self.proxy`."""

    def __init__(self, base_dir: Path | None = None) -> None:
        super().__init__(base_dir)
        self.daemon_port = free_port()
        self.proxy = FaultProxy(("127.0.0.1", self.daemon_port), name="kafka-link")
        self.daemon_bootstrap = self.proxy.address

    def prepare(self) -> None:
        super().prepare()
        path = self.dir / "server.properties"
        props = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        props["listeners"] += f",DAEMON://127.0.0.1:{self.daemon_port}"
        props["advertised.listeners"] += f",DAEMON://127.0.0.1:{self.proxy.port}"
        props["listener.security.protocol.map"] += ",DAEMON:PLAINTEXT"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def close(self, keep_dir: bool = False) -> None:
        self.proxy.close()
        super().close(keep_dir)


def _port(address: str) -> int:
    found = re.search(r":(\d+)(?:/|$)", address)
    assert found, address
    return int(found.group(1))


class Links:
    """One proxy per server the daemon talks to, by source name: zookeeper, postgresql,
    apiserver, mqtt, kafka (kafka's is `ProxiedKafka.proxy`, which outlives the daemon)."""

    def __init__(self, zk_hosts: str, db_url: str, kube_url: str, mqtt_url: str, kafka: Kafka):
        self.proxies: dict[str, FaultProxy] = {
            name: FaultProxy(("127.0.0.1", _port(address)), name=f"{name}-link")
            for name, address in (
                ("zookeeper", zk_hosts),
                ("postgresql", db_url.split("@", 1)[1]),
                ("apiserver", kube_url),
                ("mqtt", mqtt_url),
            )
        }
        self._owned = dict(self.proxies)
        if isinstance(kafka, ProxiedKafka):
            self.proxies["kafka"] = kafka.proxy
        self.kafka_bootstrap = (
            kafka.daemon_bootstrap if isinstance(kafka, ProxiedKafka) else kafka.bootstrap
        )

    def via(self, name: str, address: str) -> str:
        """`address` (a URL or host:port, with a path or not) with its port the proxy's."""
        port = _port(address)
        return address.replace(f":{port}", f":{self.proxies[name].port}", 1)

    def heal(self) -> None:
        for proxy in self.proxies.values():
            proxy.pass_through()

    def close(self) -> None:
        for proxy in self._owned.values():
            proxy.close()
