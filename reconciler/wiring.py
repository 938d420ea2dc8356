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
from typing import TYPE_CHECKING, Any

from reconciler.adapters.kube.client import make_api_client
from reconciler.adapters.kube.events import EventRecorder
from reconciler.adapters.kube.pods import KubePods
from reconciler.adapters.kube.watch import PodWatch
from reconciler.adapters.sql.inventory import CLIENT_GRACE, CONNECT_TIMEOUT, Inventory
from reconciler.adapters.sql.rows_cache import CachedRows
from reconciler.adapters.zookeeper.access import ZkAccess
from reconciler.adapters.zookeeper.acl_align import AclKeeper
from reconciler.adapters.zookeeper.cache import CachedZkStore
from reconciler.adapters.zookeeper.election import ZkElection
from reconciler.adapters.zookeeper.pins import ZkPins
from reconciler.adapters.zookeeper.session import ZkSession
from reconciler.config.settings import Settings
from reconciler.domain.backoff import Backoff
from reconciler.domain.errors import SourceUnavailable
from reconciler.domain.podspec import PodTemplate
from reconciler.reconcile.admission import Admission
from reconciler.reconcile.autoscale import Autoscaler
from reconciler.reconcile.pass_ports import MAX_WRITES_IN_FLIGHT, Ports
from reconciler.runtime.liveness import grace_for
from reconciler.runtime.loop import Daemon
from reconciler.runtime.observe_only import announce, refuse_writes
from reconciler.runtime.policy_watch import reload_policy
from reconciler.runtime.status import APISERVER_CHECK_SECONDS, ReadSide, cached_check
from reconciler.state.daemon import DaemonState
from reconciler.telemetry import metrics
from reconciler.telemetry.logs import ThrottledLog, log

if TYPE_CHECKING:  # the adapters alone import client libraries at run time
    from kubernetes.client import ApiClient

    from reconciler.adapters.kafka.config import KafkaSecurity
    from reconciler.adapters.kafka.heartbeats import HeartbeatMonitor
    from reconciler.adapters.mqtt.connect import MqttSecurity


@dataclass
class App:
    """The daemon and everything it started; `close()` stops them in reverse order."""

    settings: Settings
    daemon: Daemon
    zk: CachedZkStore  # its `session` is the daemon's ZooKeeper session
    inventory: Inventory
    pods: KubePods
    stack: ExitStack = field(default_factory=ExitStack)
    pod_watch: PodWatch | None = None
    election: ZkElection | None = None
    acl_keeper: AclKeeper | None = None  # brings existing nodes' ACLs in line (leader)

    def close(self) -> None:
        self.stack.close()


class LateBound:
    """A callback into an object built after the one that holds it: the daemon is built
    last (its ports are the adapters), yet the election and the pod watch call into it.
    Bound once, before anything that calls it is started; a call before that is dropped."""

    def __init__(self) -> None:
        self._target: Callable[..., None] | None = None

    def bind(self, target: Callable[..., None]) -> None:
        assert self._target is None, "bound twice"
        self._target = target

    def __call__(self, *args: Any) -> None:
        if self._target is not None:
            self._target(*args)


def build(settings: Settings, *, events: bool = True, api_url: str | None = None) -> App:
    """Adapters and daemon; with events=False (reconciler plan) no background listeners.
    `api_url`: where the other replicas reach this daemon's REST API, published with its
    candidacy (`Settings.advertised_api_url`; None: publish none).

    Every object is given its collaborators when built and nothing is set on it later: build
    everything, bind the callbacks into the daemon (`LateBound`), then start. Observe-only
    (RECONCILER_OBSERVE_ONLY) is built without the writers: no election, no ACL keeper, no
    event recorder; its ZooKeeper and pod adapters refuse every write unsent."""
    stack = ExitStack()
    campaign = events and not settings.observe_only  # the election and the leader's writers
    session = ZkSession(
        settings.zk_hosts, session_timeout=settings.zk_session_timeout, access=zk_access(settings)
    )
    stack.callback(session.stop)  # closed last: releasing leadership needs the session
    if not session.access.secured:
        log.warning(
            "zookeeper: no login (RECONCILER_ZK_USERNAME unset): nodes are created open to "
            "every client (OPEN_ACL_UNSAFE), who could rewrite the assignment the workers read"
        )
    inventory = Inventory(
        settings.database_url.get_secret_value(), statement_timeout=settings.database_timeout
    )
    stack.callback(inventory.close)
    api_client = api_client_for(settings)
    leadership_changed, pod_changed = LateBound(), LateBound()
    election = _election(settings, session, leadership_changed, api_url) if campaign else None
    fence = election.fence if election is not None else None
    gate = election.may_act if election is not None else None
    if settings.observe_only:
        fence, gate = refuse_writes("zookeeper"), refuse_writes("kubernetes")
    zk = CachedZkStore(session, fence=fence, full_read_seconds=settings.full_read_seconds)
    pods = KubePods(api_client, {}, gate=gate, created_by=settings.identity if gate else None)
    pod_watch = PodWatch(api_client, pod_changed) if events else None

    def on_templates(templates: dict[str, PodTemplate]) -> None:
        pods.use_templates(templates)
        for kind in templates:
            metrics.init_kind(kind)
        if pod_watch is not None:
            pod_watch.follow(templates)  # the namespaces and kinds of the policy in force

    # Load the policy before the ports (run() keeps it): the heartbeat consumers need its
    # kinds. A broken file at start is fatal; later broken edits are not.
    state = DaemonState()
    loaded = reload_policy(state, settings.policy_path, "start", on_templates)
    if not loaded and state.policy.loaded is None:
        stack.close()
        raise SystemExit(f"no valid policy: {state.policy.error}")
    monitor = _heartbeat_monitor(settings, state) if events else None
    recorder = EventRecorder(api_client, settings.identity) if campaign else None
    if recorder is not None:
        stack.callback(recorder.close)
    admission = Admission(pods)
    ports = Ports(
        store=zk,
        rows=CachedRows(inventory, full_read_seconds=settings.full_read_seconds),
        pods=pods,
        pod_cache=pod_watch,
        heartbeats=monitor,
        autoscaler=Autoscaler(pods, admission=admission),
        admission=admission,  # growth and the autoscaler read the ResourceQuota alike
        leadership=election,
        observe_only=settings.observe_only,
        events=recorder,
        pins=ZkPins(session, fence=fence),
        full_read_seconds=settings.full_read_seconds,
        # ZooKeeper pipelines requests on one session: writes that need no other to land
        # first go together (reconcile/apply.py `_Wave`).
        store_writes_in_flight=MAX_WRITES_IN_FLIGHT,
    )
    # /readyz: what the daemon cannot work without. MQTT and Kafka are not in it (the tick
    # converges without row events; heartbeat silence is not acted on while Kafka is down):
    # they show in reconciler_source_up instead.
    readiness = {
        "zookeeper": session.check_connected,
        "apiserver": cached_check(pods.check_reachable, APISERVER_CHECK_SECONDS),
    }
    daemon = Daemon(
        settings.policy_path,
        ports,
        state=state,
        on_templates=on_templates,
        read=ReadSide(state, ports, settings.policy_path, readiness=readiness),
        on_stop=election.release if election is not None else lambda: None,
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
    keeper = _acl_keeper(session, election) if campaign and settings.zk_align_acls else None
    pod_changed.bind(daemon.on_pod_change)
    leadership_changed.bind(lambda: _leadership_changed(daemon, keeper))
    app = App(settings, daemon, zk, inventory, pods, stack, pod_watch, election, keeper)
    _start(app, session, events, monitor)
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
    """The ZooKeeper login, readers and TLS the settings name
    (reconciler/adapters/zookeeper/access.py)."""
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
    """The MQTT login and TLS the settings name (reconciler/adapters/mqtt/connect.py)."""
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
    """The Kafka SASL login and TLS the settings name (reconciler/adapters/kafka/config.py)."""
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


def _election(
    settings: Settings, session: ZkSession, on_change: Callable[[], None], api_url: str | None
) -> ZkElection | None:
    """The candidacy for leadership (docs/high-availability.md): only the leader writes.

    ZooKeeper transactions are fenced by the leader's lock node, pod writes are gated by a
    fresh proof of leadership, and the loop runs standby passes (observe, apply nothing)
    while another daemon leads. SIGTERM releases leadership before the daemon exits."""
    if not settings.leader_election:
        return None
    group = settings.election_group
    return ZkElection(
        session.client, session.root, settings.identity, on_change, group=group, api_url=api_url
    )


def _leadership_changed(daemon: Daemon, keeper: AclKeeper | None) -> None:
    daemon.on_leadership_change()
    if keeper is not None:
        keeper.wake()  # a new leader brings the ACLs in line


def _acl_keeper(session: ZkSession, election: ZkElection | None) -> AclKeeper:
    """With RECONCILER_ZK_ALIGN_ACLS (it needs a login), the leader (with no election: this
    daemon) brings existing nodes' ACLs in line once per term
    (reconciler/adapters/zookeeper/acl_align.py)."""
    if election is None:
        return AclKeeper(session)
    return AclKeeper(session, leading=lambda: election.is_leader, term=lambda: election.transitions)


def _start(app: App, session: ZkSession, events: bool, monitor: HeartbeatMonitor | None) -> None:
    """Start what runs in the background, once everything is built and bound."""
    _start_in_background(session, app.stack)
    announce(app.settings.observe_only, app.settings.identity)
    if app.election is not None:
        app.election.start()  # the campaign waits for the ZooKeeper connection
        app.stack.callback(app.election.release)
        log.info("leader election", identity=app.settings.identity, node=app.election.path)
    if app.acl_keeper is not None:
        app.acl_keeper.start()
        app.stack.callback(app.acl_keeper.stop)
    if app.pod_watch is not None:
        app.pod_watch.start()
        app.stack.callback(app.pod_watch.stop)
    if events:
        _start_event_sources(app, app.stack, monitor)


def _start_in_background(session: ZkSession, stack: ExitStack) -> None:
    """Connect to ZooKeeper without blocking start-up: the loop reports it as blind meanwhile."""
    stop = threading.Event()

    def connect() -> None:
        backoff = Backoff(base=1.0, cap=30.0)
        while not stop.is_set():
            try:
                session.start()
                return
            except SourceUnavailable as e:
                delay = backoff.failed(time.monotonic())
                log.warning("zookeeper not reachable yet", error=str(e), retry_in=delay)
                stop.wait(delay)

    thread = threading.Thread(target=connect, name="zk-connect", daemon=True)
    thread.start()
    stack.callback(stop.set)


def _start_event_sources(app: App, stack: ExitStack, monitor: HeartbeatMonitor | None) -> None:
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
            session_expiry=settings.mqtt_session_expiry_seconds,
            stable_id=settings.mqtt_client_stable,
        )
        metrics.init_source("mqtt")
        listener.start()
        stack.callback(listener.stop)
        metrics.SOURCE_UP.labels("mqtt").set_function(lambda: float(listener.connected))
    else:
        log.info("row events disabled (no MQTT broker set): converging by tick only")

    if monitor is not None:
        metrics.init_source("kafka")
        monitor.start()
        metrics.SOURCE_UP.labels("kafka").set_function(
            lambda: float(all(monitor.snapshot(k).connected for k in monitor.kinds))
        )
        stack.callback(monitor.stop)


def _heartbeat_monitor(settings: Settings, state: DaemonState) -> HeartbeatMonitor | None:
    """The heartbeat consumers (started with the other event sources); None without Kafka
    or without a kind that has heartbeats enabled."""
    if not settings.kafka_bootstrap.strip():
        log.info("heartbeats disabled (no Kafka bootstrap set): silence is not checked")
        return None
    from reconciler.adapters.kafka.heartbeats import HeartbeatMonitor

    def malformed_heartbeat(payload: bytes, reason: str) -> None:
        metrics.EVENTS_MALFORMED.labels("kafka").inc()
        log.warning("malformed heartbeat", reason=reason, sample=payload[:200])

    # Consumers follow the kinds that have heartbeats enabled when the daemon starts;
    # enabling heartbeats for another kind takes a restart (docs/configuration.md).
    kinds = sorted(k for k, p in state.policies().items() if p.heartbeat.enabled)
    if not kinds:
        return None
    return HeartbeatMonitor(
        settings.kafka_bootstrap,
        kinds,
        group=settings.heartbeat_group,
        on_malformed=malformed_heartbeat,
        on_heartbeat=lambda _kind: metrics.EVENTS.labels("kafka").inc(),
        security=kafka_security(settings),
    )
