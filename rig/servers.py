"""Real servers on free 127.0.0.1 ports, data in a temp dir.

Each server: ``start()`` returns once a real client round-trip succeeds, ``stop()``,
``restart()`` on the same port and data (for outage tests), ``close()`` stops it and removes its
temp dir, ``log_path`` is its log. Failures raise :class:`rig.RigError` naming the server, the
command and the log, with the log's last lines.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, ClassVar, Self

from rig import provision
from rig.errors import RigError, log_tail
from rig.pki import Pki, make_pki
from rig.process import Proc, free_port, wait_until

log = logging.getLogger("rig")
# readiness probes expect "connection refused" while a server boots: keep that out of the output
_probe_log = logging.getLogger("rig.probe")
_probe_log.setLevel(logging.CRITICAL)
_probe_log.propagate = False

JAVA_OPTS = [
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xss512k",
    "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
]


class Server:
    """Base class: one temp dir, one log file, one or more processes."""

    name: ClassVar[str] = "server"
    start_timeout: ClassVar[float] = 60.0

    def __init__(self, base_dir: Path | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"reconciler-rig-{self.name}-", dir=base_dir))
        self.log_path = self.dir / f"{self.name}.log"
        self.procs: list[Proc] = []
        self._prepared = False
        self.closed = False
        self.paused = False

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Self:
        """Start (or do nothing if running) and wait until it really serves."""
        if self.closed:
            raise RuntimeError(f"{self.name} is closed")
        if self.running:
            return self
        provision.ensure(self.provision_name())
        if not self._prepared:
            self.prepare()
            self._prepared = True
        try:
            self.launch()
        except BaseException:
            self.stop_all()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (for outage tests); ``start()`` brings it back on the same port."""
        self.stop_all()
        self.paused = False  # Proc.stop() continues a paused process so that it can exit

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            p.stop()

    def pause(self) -> None:
        """SIGSTOP the server's processes (each whole process group: PostgreSQL's backends
        too). Its sockets stay open and the kernel still accepts connections, but nothing
        answers: a frozen or black-holed server, unlike a stopped one. ``resume()`` ends it."""
        for p in self.procs:
            p.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after ``pause()``."""
        for p in self.procs:
            p.signal(signal.SIGCONT)
        self.paused = False

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def close(self, keep_dir: bool = False) -> None:
        self.stop_all()
        self.closed, self.paused = True, False
        if not keep_dir and not os.environ.get("RIG_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return bool(self.procs) and all(p.alive() for p in self.procs)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- for subclasses ----------------------------------------------------------------
    def provision_name(self) -> str:
        return self.name

    def prepare(self) -> None:
        """One-time set-up of the data dir and config (ports are chosen in __init__)."""

    def launch(self) -> None:
        raise NotImplementedError

    def proc(self, argv: list[str | Path], **kw: Any) -> Proc:
        return Proc(self.name, argv, self.log_path, **kw)

    def run_once(
        self, argv: list[str | Path], *, user: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        """Run a set-up command to completion, its output in the log."""
        argv_s = [str(a) for a in argv]
        with open(self.log_path, "ab") as fh:
            fh.write(f"\n==== rig $ {' '.join(argv_s)}\n".encode())
            fh.flush()
            rc = subprocess.run(
                argv_s,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=user,
                env=env,
                check=False,
            ).returncode
        if rc != 0:
            raise RigError(
                self.name,
                argv_s,
                self.log_path,
                f"set-up step failed (exit {rc})",
                log_tail(self.log_path),
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} running={self.running} dir={self.dir}>"


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise RigError("java", ["java"], Path("/dev/null"), "java is not on PATH")
    return java


# ====================================================================== ZooKeeper

TICK_MS = 500  # ZooKeeper's tickTime: session timeouts may range 1 s .. 10 s (2..20 ticks)
# The benches hold 1M ids (~40 MB of JSON) in ZooKeeper's data tree, with transactions and a
# snapshot in flight: 128 MB died of OutOfMemoryError at 100k + 100k. The JVM commits heap as
# it needs it, so the small test layouts cost no more than before.
ZK_HEAP = "-Xmx1g"


class ZooKeeper(Server):
    """Debian's ZooKeeper 3.8, standalone, AdminServer off.

    ``tls``: a second port, ``.tls_port`` (``.tls_hosts``), ZooKeeper's ``secureClientPort``
    served by the Netty connection factory with PEM key and trust stores from the rig's
    throw-away CA (``.pki``, rig/pki.py). As ZooKeeper's default ``ssl.clientAuth=need``
    says, a TLS client must show a certificate that CA signed. The plain port stays open
    (the rig's readiness probe and admin clients use it). The default is the plain server
    other tests use.
    """

    name = "zookeeper"
    # Debian's zookeeper.jar names its dependencies in its manifest but leaves out
    # netty-codec, which the Netty connection factory (the only one that speaks TLS) needs:
    # without it every TLS handshake dies of NoClassDefFoundError ByteToMessageDecoder.
    CLASSPATH = (
        "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar:"
        "/usr/share/java/netty-codec.jar"
    )

    def __init__(self, base_dir: Path | None = None, *, tls: bool = False) -> None:
        super().__init__(base_dir)
        self.port = free_port()
        self.hosts = f"127.0.0.1:{self.port}"
        self.tls_port = free_port() if tls else None
        self.tls_hosts = f"127.0.0.1:{self.tls_port}" if tls else None
        self.pki: Pki | None = None

    def prepare(self) -> None:
        (self.dir / "data").mkdir()
        if self.tls_port is None:
            return
        self.pki = make_pki(self.dir / "pki")
        # A PEM key store is one file: the private key, then the certificate chain.
        keystore = self.dir / "pki" / "server-keystore.pem"
        keystore.write_text(self.pki.server_key.read_text() + self.pki.server_cert.read_text())
        settings = {
            "tickTime": str(TICK_MS),
            "dataDir": str(self.dir / "data"),
            "clientPort": str(self.port),
            "clientPortAddress": "127.0.0.1",
            "secureClientPort": str(self.tls_port),
            "secureClientPortAddress": "127.0.0.1",
            # Unknown keys become system properties "zookeeper.<key>": what these need.
            "serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
            "ssl.keyStore.location": str(keystore),
            "ssl.keyStore.type": "PEM",
            "ssl.trustStore.location": str(self.pki.ca),
            "ssl.trustStore.type": "PEM",
        }
        (self.dir / "zoo.cfg").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    def launch(self) -> None:
        # tickTime 500 ms: a session expires within its timeout + 0.5 s (sessions expire on
        # tick boundaries), so leader failover is measured, not the tick.
        args: list[str | Path] = (
            [self.dir / "zoo.cfg"]
            if self.tls_port is not None
            else [str(self.port), self.dir / "data", str(TICK_MS)]
        )
        p = self.proc(
            [
                _java(),
                ZK_HEAP,
                *JAVA_OPTS,
                "-Dzookeeper.admin.enableServer=false",
                "-Dzookeeper.4lw.commands.whitelist=ruok,srvr,stat",
                "-cp",
                self.CLASSPATH,
                "org.apache.zookeeper.server.ZooKeeperServerMain",
                *args,
            ]
        )
        self.procs = [p]
        p.start()
        wait_until(self._ping, procs=[p], timeout=self.start_timeout, what="serving")

    def _ping(self) -> bool:
        from kazoo.client import KazooClient

        client = KazooClient(
            hosts=self.hosts, timeout=2.0, connection_retry=None, logger=_probe_log
        )
        try:
            client.start(timeout=2.0)
            client.get_children("/")
            return True
        finally:
            with contextlib.suppress(Exception):
                client.stop()
                client.close()


# ====================================================================== PostgreSQL


class Postgres(Server):
    """Debian's PostgreSQL 15, run as the `postgres` user when we are root (initdb refuses root).

    Trust authentication for user `postgres` on 127.0.0.1; fsync off.

    ``tls``: ``ssl=on`` with a server certificate from the rig's throw-away CA (``.pki``,
    rig/pki.py), and pg_hba.conf lets TCP clients in only over TLS (``hostnossl ... reject``
    first, then ``hostssl`` lines). ``.url``, ``.dsn`` and the URLs the methods return then
    carry ``sslmode=verify-full`` and ``sslrootcert``; ``create_cert_role`` adds a role that
    logs in with the rig's client certificate. The default is the plain server other tests use.
    """

    name = "postgres"

    def __init__(self, base_dir: Path | None = None, *, tls: bool = False) -> None:
        super().__init__(base_dir)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.tls = tls
        self.pki: Pki | None = None
        # make_pki's names, known before prepare() writes the files
        ca = self.dir / "pki" / "ca.crt"
        self.tls_query = f"?sslmode=verify-full&sslrootcert={ca}" if tls else ""
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres{self.tls_query}"
        self.dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres" + (
            f" sslmode=verify-full sslrootcert={ca}" if tls else ""
        )
        self.bindir = Path(f"/usr/lib/postgresql/{provision.PG_MAJOR}/bin")
        self.user = "postgres" if os.geteuid() == 0 else None

    def prepare(self) -> None:
        data, sock = self.dir / "data", self.dir / "sock"
        sock.mkdir()
        self.log_path.touch()
        if self.user:
            pw = pwd.getpwnam(self.user)
            for path in (self.dir, sock, self.log_path):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        self.run_once(
            [
                self.bindir / "initdb",
                "-D",
                data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            user=self.user,
        )
        if self.tls:
            self._tls_setup(data)

    def _tls_setup(self, data: Path) -> None:
        """Certificates and the TLS-only pg_hba.conf (see the class docstring)."""
        self.pki = make_pki(self.dir / "pki")
        # The server refuses a key that others may read, and reads it as its own user.
        key = data / "server.key"
        key.write_bytes(self.pki.server_key.read_bytes())
        key.chmod(0o600)
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(key, pw.pw_uid, pw.pw_gid)
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                "ssl = on\n"
                f"ssl_cert_file = '{self.pki.server_cert}'\n"
                f"ssl_key_file = '{key}'\n"
                f"ssl_ca_file = '{self.pki.ca}'\n"  # for client certificates (`cert` lines)
            )
        # First match wins: plain TCP is refused before any line could let it in.
        (data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostnossl all all 0.0.0.0/0 reject\n"
            "hostssl all postgres 127.0.0.1/32 trust\n"
        )

    def launch(self) -> None:
        p = self.proc(
            [
                self.bindir / "postgres",
                "-D",
                self.dir / "data",
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
                self.dir / "sock",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            user=self.user,
            stop_signal=signal.SIGINT,
        )  # SIGINT = fast shutdown
        self.procs = [p]
        p.start()
        wait_until(self._ping, procs=[p], timeout=self.start_timeout, what="accepting queries")

    def _ping(self) -> bool:
        import psycopg

        with psycopg.connect(self.dsn, connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def create_database(self, name: str) -> str:
        """Create an empty database; return its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}{self.tls_query}"

    def create_password_role(self, name: str, password: str, database: str) -> str:
        """A role that must log in with its password (scram-sha-256 on 127.0.0.1, a line
        before the rig's `trust` ones in pg_hba.conf), allowed to read every table of
        `database`: for tests of a right and a wrong database password. Returns the
        SQLAlchemy URL that logs in as it."""
        from psycopg import sql

        self._hba_first(
            f"{'hostssl' if self.tls else 'host'} all {name} 127.0.0.1/32 scram-sha-256"
        )
        self._reader_role(
            sql.SQL("LOGIN PASSWORD {}").format(sql.Literal(password)), name, database
        )
        return (
            f"postgresql+psycopg://{name}:{password}@127.0.0.1:{self.port}/{database}"
            f"{self.tls_query}"
        )

    def create_cert_role(self, database: str) -> str:
        """With ``tls``: a role named after the rig's client certificate (its CN), which
        logs in with that certificate alone (pg_hba ``cert``), allowed to read every table
        of `database`. Returns the SQLAlchemy URL: no password, ``sslcert``/``sslkey``."""
        from psycopg import sql

        assert self.pki is not None, "create_cert_role needs Postgres(tls=True)"
        name = "rig-client"  # rig/pki.py's client certificate: CN=rig-client
        # libpq refuses a client key that others may read (make_pki's are 0644).
        client_key = self.dir / "client.key"
        client_key.write_bytes(self.pki.client_key.read_bytes())
        client_key.chmod(0o600)
        self._hba_first(f"hostssl all {name} 127.0.0.1/32 cert")
        self._reader_role(sql.SQL("LOGIN"), name, database)
        return (
            f"postgresql+psycopg://{name}@127.0.0.1:{self.port}/{database}{self.tls_query}"
            f"&sslcert={self.pki.client_cert}&sslkey={client_key}"
        )

    def _hba_first(self, line: str) -> None:
        """Put `line` before the rig's own lines in pg_hba.conf (applied by a reload)."""
        hba = self.dir / "data" / "pg_hba.conf"
        rules = hba.read_text()
        if line + "\n" in rules:
            return
        if self.tls:  # after the plain-TCP `reject`, which must stay first
            head, _, rest = rules.partition("hostnossl all all 0.0.0.0/0 reject\n")
            hba.write_text(f"{head}hostnossl all all 0.0.0.0/0 reject\n{line}\n{rest}")
        else:
            hba.write_text(f"{line}\n{rules}")

    def _reader_role(self, login: Any, name: str, database: str) -> None:
        """CREATE ROLE `name` <login> with SELECT on every table of `database`; reload."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} ").format(sql.Identifier(name)) + login)
            conn.execute("SELECT pg_reload_conf()")
        with psycopg.connect(
            f"{self.dsn.replace('dbname=postgres', '')} dbname={database}", autocommit=True
        ) as conn:
            conn.execute(
                sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
                    sql.Identifier(name)
                )
            )

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ====================================================================== Mosquitto


class Mosquitto(Server):
    """Debian's Mosquitto 2.0, anonymous, no persistence.

    ``users`` ({name: password}): a password file and no anonymous clients, on every
    listener. ``tls``: a second listener on ``.tls_port`` (``.tls_url``, mqtts://) with a
    certificate from the rig's throw-away CA (``.pki``, rig/pki.py); clients that show a
    certificate are checked against that CA, clients without one are still let in (with a
    password, if ``users``). The default is the anonymous plain broker other tests use.
    """

    name = "mosquitto"

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        users: dict[str, str] | None = None,
        tls: bool = False,
    ) -> None:
        super().__init__(base_dir)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.users = dict(users or {})
        self.tls_port = free_port() if tls else None
        self.tls_url = f"mqtts://127.0.0.1:{self.tls_port}" if tls else None
        self.pki: Pki | None = None

    def prepare(self) -> None:
        lines = [
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "sys_interval 1",  # $SYS/broker/clients/*: what the session tests count
        ]
        if self.tls_port is not None:
            self.pki = make_pki(self.dir / "pki")
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {self.pki.ca}",
                f"certfile {self.pki.server_cert}",
                f"keyfile {self.pki.server_key}",
                "require_certificate false",
            ]
        if self.users:
            passwd = self.dir / "passwd"
            for i, (user, password) in enumerate(self.users.items()):
                self.run_once(
                    ["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), passwd, user, password]
                )
            passwd.chmod(0o644)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to user `mosquitto`
        (self.dir / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    def launch(self) -> None:
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        p = self.proc([mosquitto, "-c", self.dir / "mosquitto.conf"])
        self.procs = [p]
        p.start()
        wait_until(self._ping, procs=[p], timeout=self.start_timeout, what="accepting MQTT")

    def _ping(self) -> bool:
        import paho.mqtt.client as mqtt

        connected = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="rig-ping")
        if self.users:
            client.username_pw_set(*next(iter(self.users.items())))
        client.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
        try:
            client.connect(self.host, self.port, keepalive=5)
            client.loop_start()
            return connected.wait(3)
        finally:
            client.loop_stop()
            with contextlib.suppress(Exception):
                client.disconnect()


# ====================================================================== Kafka

_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class Kafka(Server):
    """Apache Kafka 4.x in KRaft mode: one node that is both broker and controller.

    ``sasl_users`` ({name: password}): the client listener is SASL_PLAINTEXT with mechanism
    PLAIN instead of PLAINTEXT, those users plus the rig's own ``.admin`` (which the broker
    also uses between its own listeners); ``client_options(user)`` are the kafka-python
    keyword arguments to log in. The default is the open PLAINTEXT broker other tests use.

    ``scram_users`` ({name: password}): one more listener, SASL_SSL with mechanism
    SCRAM-SHA-512 on ``.scram_bootstrap``; the credentials are stored at format time
    (``kafka-storage format --add-scram``), as KRaft has no ZooKeeper to hold them.
    ``tls``: one more listener, SSL only on ``.tls_bootstrap``, which requires a client
    certificate (``ssl.client.auth=required``). Both use PEM key and trust stores from the
    rig's throw-away CA (``.pki``, rig/pki.py); the first listener stays as it was (the rig's
    readiness probe, producers in tests and the broker's own traffic use it).
    """

    name = "kafka"
    start_timeout = 120.0

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        sasl_users: dict[str, str] | None = None,
        scram_users: dict[str, str] | None = None,
        tls: bool = False,
    ) -> None:
        super().__init__(base_dir)
        self.port = free_port()
        self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.sasl_users = dict(sasl_users or {})
        if self.sasl_users:
            self.sasl_users["rig-admin"] = uuid.uuid4().hex
        self.admin = "rig-admin" if self.sasl_users else None
        self.scram_users = dict(scram_users or {})
        self.scram_port = free_port() if self.scram_users else None
        self.scram_bootstrap = f"127.0.0.1:{self.scram_port}" if self.scram_users else None
        self.tls_port = free_port() if tls else None
        self.tls_bootstrap = f"127.0.0.1:{self.tls_port}" if tls else None
        self.pki: Pki | None = None

    def client_options(self, user: str | None = None) -> dict[str, Any]:
        """kafka-python options to reach the client listener as `user` (default the admin)."""
        if not self.sasl_users:
            return {}
        name = user or "rig-admin"
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": name,
            "sasl_plain_password": self.sasl_users[name],
        }

    def _java_cmd(self, main: str, *args: str | Path, heap: str = "-Xmx512m") -> list[str | Path]:
        libs = provision.kafka_home() / "libs"
        return [
            _java(),
            heap,
            *JAVA_OPTS,
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.dir / 'logs'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def prepare(self) -> None:
        (self.dir / "log4j2.properties").write_text(_LOG4J2)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.flush.interval.messages": "1000000",
        }
        if self.sasl_users:
            users = " ".join(f'user_{u}="{p}"' for u, p in self.sasl_users.items())
            admin = self.sasl_users["rig-admin"]
            props.update(
                {
                    "listeners": (
                        f"SASL_PLAINTEXT://127.0.0.1:{self.port},"
                        f"CONTROLLER://127.0.0.1:{self.controller_port}"
                    ),
                    "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port}",
                    "inter.broker.listener.name": "SASL_PLAINTEXT",
                    "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,"
                    "CONTROLLER:PLAINTEXT",
                    "sasl.enabled.mechanisms": "PLAIN",
                    "sasl.mechanism.inter.broker.protocol": "PLAIN",
                    "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                        "org.apache.kafka.common.security.plain.PlainLoginModule required "
                        f'username="rig-admin" password="{admin}" {users};'
                    ),
                }
            )
        if self.scram_port is not None or self.tls_port is not None:
            props.update(self._tls_listeners(props))
        (self.dir / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        cluster_id = ""
        while not cluster_id or cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        # SCRAM credentials live in the cluster metadata: written with the first records.
        scram = [
            a
            for user, password in self.scram_users.items()
            for a in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]")
        ]
        self.run_once(
            self._java_cmd(
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                self.dir / "server.properties",
                *scram,
                heap="-Xmx256m",
            )
        )

    def _tls_listeners(self, props: dict[str, str]) -> dict[str, str]:
        """The SCRAM (SASL_SSL) and TLS (SSL) listeners added to `props`' own."""
        self.pki = make_pki(self.dir / "pki")
        # A PEM key store is one file: the private key (PKCS#8, unencrypted), then the chain.
        keystore = self.dir / "pki" / "server-keystore.pem"
        keystore.write_text(self.pki.server_key.read_text() + self.pki.server_cert.read_text())
        added: dict[str, tuple[str, int]] = {}
        if self.scram_port is not None:
            added["SCRAM"] = ("SASL_SSL", self.scram_port)
        if self.tls_port is not None:
            added["TLS"] = ("SSL", self.tls_port)
        extra = ",".join(f"{name}://127.0.0.1:{port}" for name, (_, port) in added.items())
        out = {
            "listeners": f"{props['listeners']},{extra}",
            "advertised.listeners": f"{props['advertised.listeners']},{extra}",
            "listener.security.protocol.map": props["listener.security.protocol.map"]
            + "".join(f",{name}:{protocol}" for name, (protocol, _) in added.items()),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.pki.ca),
        }
        if self.scram_port is not None:
            out["listener.name.scram.sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
            out["listener.name.scram.scram-sha-512.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
        if self.tls_port is not None:
            out["listener.name.tls.ssl.client.auth"] = "required"
        return out

    def launch(self) -> None:
        p = self.proc(self._java_cmd("kafka.Kafka", self.dir / "server.properties"))
        self.procs = [p]
        p.start()
        wait_until(
            self._ping, procs=[p], timeout=self.start_timeout, what="serving metadata", interval=0.5
        )

    def _ping(self) -> bool:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            request_timeout_ms=3000,
            client_id="rig-ping",
            **self.client_options(),
        )
        try:
            cluster = admin.describe_cluster()
            return bool(cluster.get("brokers")) and cluster.get("controller_id", -1) != -1
        finally:
            admin.close()

    def stop_all(self) -> None:
        for p in self.procs:
            p.stop(timeout=30)


# ====================================================================== Prometheus


class Prometheus(Server):
    """Debian's Prometheus 2.x with --web.enable-lifecycle, so ``scrape()`` can reload it."""

    name = "prometheus"

    def __init__(self, base_dir: Path | None = None) -> None:
        super().__init__(base_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = self.dir / "prometheus.yml"
        self.targets: list[str] = []

    def _write_config(self) -> None:
        cfg: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [],
        }
        if self.targets:
            cfg["scrape_configs"].append(
                {
                    "job_name": "rig",
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": list(self.targets)}],
                }
            )
        # JSON is YAML
        self.config_path.write_text(json.dumps(cfg, indent=2) + "\n")

    def prepare(self) -> None:
        (self.dir / "data").mkdir()
        self._write_config()

    def launch(self) -> None:
        prom = shutil.which("prometheus") or "/usr/bin/prometheus"
        p = self.proc(
            [
                prom,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=info",
            ]
        )
        self.procs = [p]
        p.start()
        wait_until(
            lambda: self._http("GET", "/-/ready")[0] == 200,
            procs=[p],
            timeout=self.start_timeout,
            what="ready",
        )

    def _http(self, method: str, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def scrape(self, targets: list[str]) -> None:
        """Scrape exactly these host:port targets (path /metrics) every second, from now on."""
        self.targets = [t.removeprefix("http://").rstrip("/") for t in targets]
        self._write_config()
        status, body = self._http("POST", "/-/reload", timeout=15)
        if status != 200:
            raise RigError(
                self.name,
                f"POST {self.url}/-/reload",
                self.log_path,
                f"config reload failed: {status} {body[:500]!r}",
                log_tail(self.log_path),
            )

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant PromQL query; return the result vector."""
        from urllib.parse import quote

        status, body = self._http("GET", f"/api/v1/query?query={quote(promql)}")
        data = json.loads(body)
        if status != 200 or data.get("status") != "success":
            raise RuntimeError(f"prometheus query {promql!r} failed: {status} {body[:500]!r}")
        return list(data["data"]["result"])
