"""MQTT `cm/notify` listener: row created/deleted hints for the loop (docs/contracts.md "Change
notifications").

paho-mqtt 2.x with its own network thread (`loop_start`). Choices and why:
- A persistent session under a fixed client id: the broker keeps our subscription and queues
  QoS-1 messages while we are away (a network blip, a daemon restart), and delivers them when
  we reconnect with the same client id. MQTT 5: `clean_start=False` and a bounded session
  expiry (`session_expiry`, a few minutes by default: long enough to ride out a restart, short
  enough that the session of a daemon that never comes back, or whose id changed, goes).
  MQTT 3.1.1 has no expiry: the broker keeps a `clean_session=False` session until that client
  id returns (or for Mosquitto's `persistent_client_expiration`), so a client id that does not
  survive a restart (`stable_id=False`) connects with a clean session there instead. Two
  processes must never share a client id (they would take the session from each other in a
  loop), so the caller passes one per replica. Mosquitto caps the queue
  (`max_queued_messages`, default 1000) and forgets sessions on its own restart unless
  `persistence true`: events stay hints and the periodic tick converges whatever is lost.
- Protocol (`protocol`): "5", "3.1.1", or "auto" (the default): MQTT 5, and 3.1.1 from then on
  once a broker shows it does not speak 5, i.e. when
  (a) its CONNACK refuses the protocol version (MQTT 5 reason 0x84; a 3.1.1 broker answers
      return code 1, "unacceptable protocol level", which paho reads as the same reason), or
  (b) before MQTT 5 ever worked for this listener, the connection ends without any CONNACK
      (a 3.1.1-only broker that cannot parse a v5 CONNECT, such as amqtt 0.12, waits for bytes
      that never come until our keepalive gives up).
  Falling back is always safe (every MQTT 5 broker speaks 3.1.1) and never reversed until a
  restart; a TCP connect that fails is an outage, not a protocol answer, and changes nothing.
  paho fixes the protocol when a client is made, so the fallback makes a new client (same
  client id, persistent session) off the network thread.
- Subscribe again on every CONNACK: with a fresh session (broker restarted, or the session
  expired) the broker has forgotten the subscription; with a resumed one it is harmless.
- paho sends PUBACK after `on_message` returns, so a message is acknowledged only after
  `on_event` took it: if the process dies inside the callback, the broker redelivers.
- Credentials and TLS (`security`, connect.MqttSecurity): the user name and password
  (or a URL's `user:password@`) go into every CONNECT; `mqtts://` brokers are spoken to over
  TLS with the chain and host name verified. Both are checked when the listener is made, so
  a wrong setting fails the start instead of being ignored; a broker refusing our login
  (CONNACK "not authorized") is logged as an error and retried like an outage.
- Nothing raised by parsing or by the callbacks may reach paho: with `suppress_exceptions`
  off (the default) an exception in a callback propagates out of the network loop and ends
  the thread, silently stopping all notifications.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from reconciler.adapters.mqtt.connect import (
    _PAHO,
    LOGIN_HINT,
    UNSUPPORTED_PROTOCOL_VERSION,
    Broker,
    MqttSecurity,
    ProtocolChoice,
    disconnect_hint,
    parse_broker_urls,
)
from reconciler.adapters.mqtt.receive import NotificationHandler
from reconciler.domain.events import MAX_IDS, MAX_MESSAGE_BYTES, RowEvent

# The logger name is part of the log format operators filter on: it does not follow the
# module when code moves (docs/architecture.md "Logs").
log = logging.getLogger("reconciler.adapters.notify")

KEEPALIVE_S = 30  # a dead TCP connection is noticed within 1.5 x keepalive
# How long the broker keeps our session (and queues messages) while we are disconnected
# (RECONCILER_MQTT_SESSION_EXPIRY_SECONDS); after a longer outage the periodic tick re-reads
# the database anyway.
SESSION_EXPIRY_S = 300


class NotifyListener:
    """Subscribes to `topic` at QoS 1 and calls `on_event` for every row created or deleted.

    `on_event` and `on_malformed` run on paho's network thread: keep them short (enqueue and
    return); while they run, no other message is read. `on_malformed(payload, reason)` gets
    every payload that is not one of the message forms of docs/contracts.md "Change
    notifications"; messages that change no assignment (updates, unknown ops) are dropped
    here.
    """

    def __init__(
        self,
        broker_url: str,
        on_event: Callable[[RowEvent], None],
        *,
        client_id: str,
        topic: str = "cm/notify",
        on_malformed: Callable[[bytes, str], None] | None = None,
        on_ignored: Callable[[str], None] | None = None,
        on_rejected: Callable[[str, str], None] | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_ids: int = MAX_IDS,
        reconnect_delay: float = 10.0,
        protocol: str = "auto",
        keepalive: int = KEEPALIVE_S,
        security: MqttSecurity | None = None,
        session_expiry: int = SESSION_EXPIRY_S,
        stable_id: bool = True,
    ) -> None:
        """`protocol`: "auto" (MQTT 5, falling back to 3.1.1 for a broker that does not speak
        5), "5" or "3.1.1" (RECONCILER_MQTT_PROTOCOL). `keepalive`: seconds; a dead
        connection, or a broker that never answers our CONNECT, is given up after 1.5x.
        `session_expiry`: seconds the broker keeps our session after a disconnect (MQTT 5).
        `stable_id`: whether `client_id` is the same after a restart; if not, MQTT 3.1.1 gets
        a clean session (see the module docstring)."""
        if not client_id:
            # An empty id makes the broker invent one per connection: no persistent session.
            raise ValueError("a fixed, non-empty client_id is needed for a persistent session")
        if reconnect_delay <= 0:
            raise ValueError("reconnect_delay must be positive")
        if not 0 <= session_expiry < 2**32:
            raise ValueError("session_expiry must be 0..2^32-1 seconds")
        self._session_expiry = session_expiry
        self._stable_id = stable_id
        self.brokers = parse_broker_urls(broker_url)
        self._security = security or MqttSecurity()
        self._security.check(self.brokers)
        self._tls = self._security.tls_context() if self.brokers[0].tls else None
        self._choice = ProtocolChoice(protocol)
        self._keepalive = keepalive
        self._awaiting_connack = False  # a CONNECT is out and no CONNACK came back yet
        self.client_id = client_id
        self.topic = topic
        self._messages = NotificationHandler(
            topic,
            on_event,
            on_malformed=on_malformed,
            on_ignored=on_ignored,
            on_rejected=on_rejected,
            max_message_bytes=max_message_bytes,
            max_ids=max_ids,
        )
        self._reconnect_delay = reconnect_delay
        self._broker_index = 0
        self._connected = threading.Event()
        self._client: mqtt.Client | None = None
        self._subscribe_mid = -1  # mid of the SUBSCRIBE sent on the latest connection
        self._lock = threading.Lock()  # guards start/stop against each other

    # --- public ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True from the broker's SUBACK until the next disconnect."""
        return self._connected.is_set()

    @property
    def broker(self) -> Broker:
        """The broker currently used (or being tried)."""
        return self.brokers[self._broker_index]

    @property
    def protocol(self) -> str:
        """The MQTT version spoken (or being tried): "5" or "3.1.1"."""
        return self._choice.speaking

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start(self) -> None:
        """Connect in the background; returns at once. Retries until `stop()`."""
        with self._lock:
            if self._client is not None:
                return
            self._client = self._new_client()
            log.info(
                "mqtt listener %s started, broker %s, topic %s, MQTT %s (setting %s)",
                self.client_id,
                self.broker,
                self.topic,
                self.protocol,
                self._choice.mode,
            )

    def _new_client(self) -> mqtt.Client:
        """A started client speaking `self.protocol`; the caller holds `_lock`."""
        if self.protocol == "5":
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=_PAHO["5"]
            )
        else:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                # 3.1.1's persistent session, which no expiry bounds: only for an id that
                # comes back after a restart and so takes its session over again.
                clean_session=not self._stable_id,
                protocol=_PAHO["3.1.1"],
            )
        # paho waits min_delay after a loss, doubling up to max_delay (`reconnect_delay`,
        # by default the old orchestrator's fixed retry interval). paho's delays are ints in
        # its signature but it only compares and sleeps on them, so fractions (for tests)
        # work.
        client.reconnect_delay_set(
            min_delay=min(1.0, self._reconnect_delay),  # type: ignore[arg-type]
            max_delay=self._reconnect_delay,  # type: ignore[arg-type]
        )
        if self._tls is not None:
            client.tls_set_context(self._tls)
        client.on_pre_connect = self._handle_pre_connect
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_connect_fail = self._handle_connect_fail
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        # connect_async + loop_start: the first connection is retried in the background
        # too, so a daemon started before its broker does not fail.
        self._connect_async(client)
        client.loop_start()
        return client

    def _fall_back(self, client: mqtt.Client) -> None:
        """On paho's thread: this client spoke MQTT 5 to a broker that does not. Replace it
        with a 3.1.1 client from another thread (loop_stop joins the network thread)."""
        log.warning(
            "mqtt broker %s: %s; speaking MQTT 3.1.1 from now on (clean_session=%s; set "
            "RECONCILER_MQTT_PROTOCOL=3.1.1 to skip the attempt)",
            self.broker,
            self._choice.fallback_reason,
            str(not self._stable_id).lower(),
        )
        threading.Thread(
            target=self._replace_client, args=(client,), name="mqtt-fallback", daemon=True
        ).start()

    def _replace_client(self, old: mqtt.Client) -> None:
        with self._lock:
            if self._client is not old:
                return  # stopped (or replaced) meanwhile
            old.loop_stop()  # before its backoff ends: no further MQTT 5 attempt
            old.disconnect()
            self._connected.clear()
            self._client = self._new_client()

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect cleanly (the broker keeps our session for `session_expiry`) and join
        the network thread."""
        with self._lock:
            client, self._client = self._client, None
            if client is None:
                return
            client.disconnect()
            client.loop_stop()
            self._connected.clear()
            log.info("mqtt listener %s stopped", self.client_id)

    def _connect_async(self, client: mqtt.Client) -> None:
        broker = self.broker
        login = self._security.login(broker)  # per broker: URLs may carry their own
        client.username_pw_set(*(login or (None, None)))
        if self.protocol == "3.1.1":
            # clean_session was given to the client: 3.1.1 has no properties.
            client.connect_async(broker.host, broker.port, keepalive=self._keepalive)
            return
        # MQTT 5 with clean_start=False and a session expiry: the broker keeps our session
        # and queues QoS-1 messages while we are away. Receive Maximum 65535 lets the broker
        # send a burst without waiting for our PUBACKs (Mosquitto's default window is 20):
        # with a small window, a burst piles up in the broker's bounded per-client queue,
        # which drops the rest whenever a pass holds the interpreter for a moment.
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry
        props.ReceiveMaximum = 65535
        client.connect_async(
            broker.host,
            broker.port,
            keepalive=self._keepalive,
            clean_start=False,
            properties=props,
        )

    # --- paho callbacks (network thread) ------------------------------------------------

    def _handle_pre_connect(self, _client: mqtt.Client, _userdata: Any) -> None:
        self._awaiting_connack = True

    def _handle_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: Any,
        _properties: Any,
    ) -> None:
        self._awaiting_connack = False
        if self._choice.connack(reason_code.value):
            self._fall_back(client)
            return
        if reason_code.is_failure:
            # paho closes the socket and retries after the backoff; a refusal (bad client id,
            # not authorised, or MQTT 5 forced on a 3.1.1 broker) is a configuration problem,
            # so say it loudly.
            hint = (
                ": set RECONCILER_MQTT_PROTOCOL to auto or 3.1.1"
                if reason_code.value == UNSUPPORTED_PROTOCOL_VERSION
                else LOGIN_HINT.get(reason_code.value, "")
            )
            log.error("mqtt broker %s refused connection: %s%s", self.broker, reason_code, hint)
            return
        result, mid = client.subscribe(self.topic, qos=1)
        if result != mqtt.MQTT_ERR_SUCCESS:
            log.error("mqtt subscribe to %s failed: %s", self.topic, mqtt.error_string(result))
            return
        self._subscribe_mid = mid
        log.info(
            "mqtt connected to %s with MQTT %s (session present: %s), subscribing to %s",
            self.broker,
            self.protocol,
            flags.session_present,
            self.topic,
        )

    def _handle_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reason_codes: list[Any],
        _properties: Any,
    ) -> None:
        # `connected` is only reported once the broker acknowledged the subscription: with a
        # fresh session, a message published between CONNACK and SUBACK is not ours.
        if mid != self._subscribe_mid:
            return
        if any(rc.is_failure for rc in reason_codes):
            log.error(
                "mqtt broker %s refused subscription to %s: %s",
                self.broker,
                self.topic,
                reason_codes,
            )
            return
        self._connected.set()
        log.info("mqtt subscribed to %s on %s", self.topic, self.broker)

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason_code: Any,
        _properties: Any,
    ) -> None:
        no_connack, self._awaiting_connack = self._awaiting_connack, False
        if no_connack and client is self._client:
            if self._choice.ended_without_connack():
                self._fall_back(client)
                return
            log.warning(
                "mqtt broker %s ended the connection before answering our MQTT %s CONNECT (%s)",
                self.broker,
                self.protocol,
                reason_code,
            )
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and self._client is not None:  # not our own stop()
            log.warning(
                "mqtt disconnected from %s (%s%s); reconnecting",
                self.broker,
                reason_code,
                disconnect_hint(getattr(reason_code, "value", None), self.client_id),
            )

    def _handle_connect_fail(self, client: mqtt.Client, _userdata: Any) -> None:
        # TCP connect failed: try the next broker of the list on the next attempt. The
        # `host`/`port` setters refuse while paho's state is still CONNECTING, so re-arm with
        # connect_async, which only resets state and address; paho's loop then waits its
        # backoff and calls reconnect() on the new address.
        self._awaiting_connack = False  # no connection: an outage, not a protocol answer
        previous = self.broker
        if len(self.brokers) > 1:
            self._broker_index = (self._broker_index + 1) % len(self.brokers)
            self._connect_async(client)
        log.warning("mqtt broker %s unreachable; next attempt: %s", previous, self.broker)

    def _handle_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._messages.handle(bytes(msg.payload))
