"""Wiring: build the adapters from Settings and hand them to the loop.

The only place that knows which concrete adapter serves which interface, so the loop and the
reconciler stay free of client libraries and tests can wire real servers the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.adapters.kube import KubePods, PodWatcher, make_api_client
from reconciler.adapters.kube.events import EventRecorder
from reconciler.adapters.sql.inventory import CLIENT_GRACE, CONNECT_TIMEOUT, Inventory
from reconciler.adapters.sql.rows_cache import CachedRows
from reconciler.adapters.zookeeper.access import ZkAccess
from reconciler.adapters.zookeeper.acl_align import AclKeeper
from reconciler.adapters.zookeeper.cache import CachedZkStore
from reconciler.adapters.zookeeper.election import ZkElection
from reconciler.adapters.zookeeper.pins import ZkPins
from reconciler.adapters.zookeeper.store import ZkStore
from reconciler.config.settings import Settings
from reconciler.domain.backoff import Backoff
from reconciler.domain.errors import SourceUnavailable
from reconciler.domain.model import Pod
from reconciler.domain.podspec import PodTemplate
from reconciler.reconcile.autoscale import Autoscaler
from reconciler.reconcile.pass_ports import Ports
from reconciler.runtime.liveness import grace_for
from reconciler.runtime.loop import Daemon
from reconciler.telemetry import metrics
from reconciler.telemetry.logs import ThrottledLog, log

if TYPE_CHECKING:  # the adapters alone import client libraries at run time
    from kubernetes.client import ApiClient

    from reconciler.adapters.kafka.config import KafkaSecurity
    from reconciler.adapters.mqtt.connect import MqttSecurity


@dataclass
class App:
    """The daemon and everything it started; `close()` stops them in reverse order."""

    settings: Settings
    daemon: Daemon
    zk: ZkStore
    inventory: Inventory
    pods: KubePods
    stack: ExitStack = field(default_factory=ExitStack)
    watcher: PodWatcher | None = None
    election: ZkElection | None = None
    acl_keeper: AclKeeper | None = None  # brings existing nodes' ACLs in line (leader)

    def close(self) -> None:
        self.stack.close()


def build(settings: Settings, *, events: bool = True) -> App:
    """Adapters and daemon; with events=False (reconciler plan) no background listeners."""
    stack = ExitStack()
    zk = CachedZkStore(
        settings.zk_hosts,
        session_timeout=settings.zk_session_timeout,
        access=zk_access(settings),
        full_read_seconds=settings.full_read_seconds,
    )
    if not zk.access.secured:
        log.warning(
            "zookeeper: no login (RECONCILER_ZK_USERNAME unset): nodes are created open to "
            "every client (OPEN_ACL_UNSAFE), who could rewrite the assignment the workers read"
        )
    _start_in_background(zk, stack)
    inventory = Inventory(
        settings.database_url.get_secret_value(), statement_timeout=settings.database_timeout
    )
    stack.callback(inventory.close)
    api_client = api_client_for(settings)
    pods = KubePods(api_client, {})
    rows = CachedRows(inventory, full_read_seconds=settings.full_read_seconds)
    ports = Ports(
        store=zk,
        rows=rows,
        pods=pods,
        autoscaler=Autoscaler(pods),
        pins=ZkPins(zk),
        full_read_seconds=settings.full_read_seconds,
    )
    daemon = Daemon(
        settings.policy_path,
        ports,
        pass_budget=settings.pass_budget_seconds,
        # The longest single call: a database read (its deadline, the drop after it, a connect
        # that hangs) or a ZooKeeper call (a session's length at most).
        liveness_grace=grace_for(
            [
                settings.database_timeout + CLIENT_GRACE + CONNECT_TIMEOUT,
                settings.zk_session_timeout,
            ]
        ),
    )
    app = App(settings, daemon, zk, inventory, pods, stack)
    if events:
        ports.pod_cache = WatchCache(app)
        recorder = EventRecorder(api_client, settings.identity)
        ports.events = recorder
        stack.callback(recorder.close)
        if settings.leader_election:
            _campaign(app, ports, stack)
        if zk.access.secured:
            _keep_acls(app, stack)

    def on_templates(templates: dict[str, PodTemplate]) -> None:
        pods.templates = templates
        for kind in templates:
            metrics.init_kind(kind)
        if not events:
            return
        # The watcher follows the namespaces and kinds of the policy in force.
        if app.watcher is not None:
            app.watcher.stop()
        app.watcher = PodWatcher(api_client, templates, app.daemon.on_pod_change)
        app.watcher.start()

    app.daemon.on_templates = on_templates
    # /readyz: what the daemon cannot work without. MQTT and Kafka are not in it (the tick
    # converges without row events; heartbeat silence is not acted on while Kafka is down):
    # they show in reconciler_source_up instead.
    assert app.daemon.read is not None
    app.daemon.read.readiness = {
        "zookeeper": lambda: _connected(zk),
        "apiserver": cached_check(pods.check_reachable, APISERVER_CHECK_SECONDS),
    }
    stack.callback(lambda: app.watcher.stop() if app.watcher else None)
    # Load the policy now (run() keeps it): the event sources need its kinds. A broken file
    # at start is fatal; later broken edits are not.
    if not app.daemon.load_policy("start") and app.daemon.state.loaded is None:
        stack.close()
        raise SystemExit(f"no valid policy: {app.daemon.state.policy_error}")
    if events:
        _start_event_sources(app, stack)
    return app


def api_client_for(settings: Settings) -> ApiClient:
    """The apiserver client the settings name (KubeConfigError when none is usable)."""
    return make_api_client(
        in_cluster=settings.kube_in_cluster,
        kubeconfig=settings.kubeconfig,
        url=settings.kube_url,
        token=settings.kube_token.get_secret_value() if settings.kube_token else None,
        ca_file=settings.kube_ca_file,
        verify_ssl=settings.kube_verify_ssl,
    )


def zk_access(settings: Settings) -> ZkAccess:
    """The ZooKeeper login, readers and TLS the settings name (adapters/zk_access.py)."""
    password = settings.zk_password
    readers = settings.zk_readers
    return ZkAccess(
        username=settings.zk_username,
        password=password.get_secret_value() if password else None,
        readers=() if readers == "anyone" else tuple(readers.split(",")),
        ca_file=settings.zk_tls_ca_file,
        cert_file=settings.zk_tls_cert_file,
        key_file=settings.zk_tls_key_file,
        insecure_hostname=settings.zk_tls_insecure_hostname,
    )


def mqtt_security(settings: Settings) -> MqttSecurity:
    """The MQTT login and TLS the settings name (adapters/mqtt_connect.py)."""
    from reconciler.adapters.mqtt.connect import MqttSecurity

    password = settings.mqtt_password
    return MqttSecurity(
        username=settings.mqtt_username,
        password=password.get_secret_value() if password else None,
        ca_file=settings.mqtt_ca_file,
        cert_file=settings.mqtt_cert_file,
        key_file=settings.mqtt_key_file,
        insecure_hostname=settings.mqtt_tls_insecure_hostname,
    )


def kafka_security(settings: Settings) -> KafkaSecurity:
    """The Kafka SASL login and TLS the settings name (adapters/kafka_config.py)."""
    from reconciler.adapters.kafka.config import KafkaSecurity

    password = settings.kafka_sasl_password
    return KafkaSecurity(
        protocol=settings.kafka_security_protocol,
        mechanism=settings.kafka_sasl_mechanism,
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password else None,
        ca_file=settings.kafka_ca_file,
        cert_file=settings.kafka_cert_file,
        key_file=settings.kafka_key_file,
        insecure_hostname=settings.kafka_tls_insecure_hostname,
    )


def _campaign(app: App, ports: Ports, stack: ExitStack) -> None:
    """Contend for leadership (README "High availability"): only the leader writes.

    ZooKeeper transactions are fenced by the leader's lock node, pod writes are gated by a
    fresh proof of leadership, and the loop runs standby passes (observe, apply nothing)
    while another daemon leads. SIGTERM releases leadership before the daemon exits."""
    election = ZkElection(
        app.zk.client,
        app.zk.root,
        app.settings.identity,
        lambda: _leadership_changed(app),
        group=app.settings.election_group,
    )
    app.election = election
    app.zk.fence = election.fence
    app.pods.gate = election.may_act
    app.pods.created_by = app.settings.identity
    ports.leadership = election
    app.daemon.on_stop = election.release
    election.start()  # the campaign waits for the ZooKeeper connection
    stack.callback(election.release)
    log.info("leader election", identity=app.settings.identity, node=election.path)


def _leadership_changed(app: App) -> None:
    app.daemon.on_leadership_change()
    if app.acl_keeper is not None:
        app.acl_keeper.wake()  # a new leader brings the ACLs in line


def _keep_acls(app: App, stack: ExitStack) -> None:
    """The leader (with no election: this daemon) brings existing nodes' ACLs in line once
    per term (adapters/zk_acl_align.py)."""
    election = app.election
    if election is None:
        keeper = AclKeeper(app.zk)
    else:
        keeper = AclKeeper(
            app.zk, leading=lambda: election.is_leader, term=lambda: election.transitions
        )
    app.acl_keeper = keeper
    keeper.start()
    stack.callback(keeper.stop)


class WatchCache:
    """The pod watch's current pods as the pipeline's PodCache: only while the kind's watch
    stream is established (a lost stream may be missing changes; the pass then lists)."""

    def __init__(self, app: App) -> None:
        self._app = app

    def pods(self, kind: str) -> dict[str, Pod] | None:
        watcher = self._app.watcher
        if watcher is None or not watcher.kind_healthy(kind):
            return None
        return watcher.pods(kind)


# /readyz asks the apiserver at most this often (a probe every second must not become an
# apiserver call every second); the answer, good or bad, is reused meanwhile.
APISERVER_CHECK_SECONDS = 5.0


def _connected(zk: ZkStore) -> bool:
    if not zk.connected:
        raise SourceUnavailable(f"no ZooKeeper session ({zk.hosts})")
    return True


def cached_check(check: Callable[[], None], seconds: float) -> Callable[[], bool]:
    """A readiness check that runs `check` (raises when unhealthy) at most every `seconds`."""
    lock = threading.Lock()
    last: list[tuple[float, Exception | None]] = []

    def run() -> bool:
        with lock:
            now = time.monotonic()
            if not last or now - last[0][0] >= seconds:
                try:
                    check()
                    error: Exception | None = None
                except Exception as e:
                    error = e
                last[:] = [(now, error)]
            error = last[0][1]
        if error is not None:
            raise error
        return True

    return run


def _start_in_background(zk: ZkStore, stack: ExitStack) -> None:
    """Connect to ZooKeeper without blocking start-up: the loop reports it as blind meanwhile."""
    stop = threading.Event()

    def connect() -> None:
        backoff = Backoff(base=1.0, cap=30.0)
        while not stop.is_set():
            try:
                zk.start()
                return
            except SourceUnavailable as e:
                delay = backoff.failed(time.monotonic())
                log.warning("zookeeper not reachable yet", error=str(e), retry_in=delay)
                stop.wait(delay)

    thread = threading.Thread(target=connect, name="zk-connect", daemon=True)
    thread.start()
    stack.callback(zk.stop)
    stack.callback(stop.set)


def _start_event_sources(app: App, stack: ExitStack) -> None:
    settings = app.settings
    if settings.mqtt_brokers.strip():
        from reconciler.adapters.mqtt.notify import NotifyListener

        def malformed(payload: bytes, reason: str) -> None:
            metrics.EVENTS_MALFORMED.labels("mqtt").inc()
            log.warning("malformed cm/notify message", reason=reason, sample=payload[:200])

        def rejected(label: str, reason: str) -> None:
            metrics.EVENTS_REJECTED.labels("mqtt", label).inc()
            rejected_log.warning("cm/notify message rejected", reason=label, detail=reason)

        rejected_log = ThrottledLog(log, every_seconds=10.0)
        listener = NotifyListener(
            settings.mqtt_brokers,
            app.daemon.on_row_event,
            client_id=settings.mqtt_client,
            on_malformed=malformed,
            on_ignored=lambda reason: metrics.EVENTS_IGNORED.labels("mqtt", reason).inc(),
            on_rejected=rejected,
            max_message_bytes=settings.mqtt_max_message_bytes,
            max_ids=settings.mqtt_max_ids,
            reconnect_delay=settings.mqtt_reconnect_seconds,
            protocol=settings.mqtt_protocol,
            security=mqtt_security(settings),
        )
        metrics.init_source("mqtt")
        listener.start()
        stack.callback(listener.stop)
        metrics.SOURCE_UP.labels("mqtt").set_function(lambda: float(listener.connected))
    else:
        log.info("row events disabled (no MQTT broker set): converging by tick only")

    if settings.kafka_bootstrap.strip():
        from reconciler.adapters.kafka.heartbeats import HeartbeatMonitor

        def malformed_heartbeat(payload: bytes, reason: str) -> None:
            metrics.EVENTS_MALFORMED.labels("kafka").inc()
            log.warning("malformed heartbeat", reason=reason, sample=payload[:200])

        # Consumers follow the kinds that have heartbeats enabled when the daemon starts;
        # enabling heartbeats for another kind takes a restart (README).
        kinds = sorted(k for k, p in app.daemon.state.policies().items() if p.heartbeat.enabled)
        if kinds:
            monitor = HeartbeatMonitor(
                settings.kafka_bootstrap,
                kinds,
                group=settings.heartbeat_group,
                on_malformed=malformed_heartbeat,
                on_heartbeat=lambda _kind: metrics.EVENTS.labels("kafka").inc(),
                security=kafka_security(settings),
            )
            metrics.init_source("kafka")
            monitor.start()
            metrics.SOURCE_UP.labels("kafka").set_function(
                lambda: float(all(monitor.snapshot(k).connected for k in kinds))
            )
            stack.callback(monitor.stop)
            app.daemon.ports.heartbeats = monitor
    else:
        log.info("heartbeats disabled (no Kafka bootstrap set): silence is not checked")
