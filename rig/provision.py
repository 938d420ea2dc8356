"""Install or build every server of the test rig, cached by version.

Debian packages come from apt; Kafka's jars from Maven Central (through `mvn`); etcd,
kube-apiserver, kube-scheduler and kwok are built from the Go module proxy by `rig/build-go.sh`.
Built artefacts live under ``${XDG_CACHE_HOME:-~/.cache}/reconciler-rig/``, one folder per
version, so only the first run pays; a second run only checks that they are there.

    python -m rig provision [zookeeper mosquitto postgres prometheus kafka kube]
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rig.errors import RigError, log_tail

KAFKA_VERSION = "4.3.1"
LOG4J_VERSION = "2.25.4"  # the log4j-core that kafka_2.13 4.3.1 depends on
SCALA_VERSION = "2.13"
ETCD_VERSION = "v3.6.16"
KUBE_VERSION = "v1.34.4"
KWOK_VERSION = "v0.7.0"
PG_MAJOR = "15"

RIG_DIR = Path(__file__).resolve().parent

# server name -> Debian packages it needs (commands that must be on PATH are checked too)
APT_PACKAGES: dict[str, list[str]] = {
    "zookeeper": ["zookeeper", "default-jre-headless"],
    "mosquitto": ["mosquitto"],
    "postgres": [f"postgresql-{PG_MAJOR}"],
    "prometheus": ["prometheus"],
    "kafka": ["maven", "default-jre-headless"],
    "kube": ["openssl"],
}
SERVERS = ["zookeeper", "mosquitto", "postgres", "prometheus", "kafka", "kube"]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "reconciler-rig"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """Serialise provisioning across processes (several test runs may share one machine)."""
    lock_path = cache_dir() / f".{name}.lock"
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(server: str, argv: list[str], log_path: Path, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> None:
    """Run one provisioning command, its output appended to log_path; raise RigError on failure."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                              env=env, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise RigError(server, argv, log_path,
                       f"provisioning failed (exit {proc.returncode})", log_tail(log_path))


# ---------------------------------------------------------------- Debian packages

def _dpkg_installed(pkg: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True,
                         text=True, check=False)
    return out.returncode == 0 and out.stdout.strip().endswith("install ok installed")


def ensure_apt(server: str) -> None:
    missing = [p for p in APT_PACKAGES.get(server, []) if not _dpkg_installed(p)]
    if not missing:
        return
    log_path = cache_dir() / "logs" / "apt.log"
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", *missing]
    with _lock("apt"):
        lists = Path("/var/lib/apt/lists")
        if not any(lists.glob("*_Packages*")):
            _run(server, [*sudo, "apt-get", "update"], log_path, env=env)
        try:
            _run(server, install, log_path, env=env)
        except RigError:
            # an old package list names versions the mirror no longer has: refresh once
            _run(server, [*sudo, "apt-get", "update"], log_path, env=env)
            _run(server, install, log_path, env=env)


# ---------------------------------------------------------------- Kafka (Maven Central)

KAFKA_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>reconciler.rig</groupId>
  <artifactId>kafka-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{version}</version>
    </dependency>
    <!-- Kafka logs through slf4j 1.7 into Log4j2 (log4j-core comes with kafka_2.13);
         without this binding slf4j falls back to a no-op logger and the log stays empty. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def kafka_home() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}"


def ensure_kafka() -> Path:
    """Kafka's runtime jars in <cache>/kafka-<version>/libs (KRaft needs no ZooKeeper)."""
    home = kafka_home()
    done = home / ".complete"
    if done.exists():
        return home
    ensure_apt("kafka")
    with _lock("kafka"):
        if done.exists():
            return home
        work = home.with_name(home.name + ".tmp")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "pom.xml").write_text(KAFKA_POM.format(scala=SCALA_VERSION,
                                                       version=KAFKA_VERSION,
                                                       log4j=LOG4J_VERSION))
        log_path = cache_dir() / "logs" / f"kafka-{KAFKA_VERSION}.log"
        _run("kafka", ["mvn", "-B", "-q", "dependency:copy-dependencies",
                       "-DincludeScope=runtime", "-DoutputDirectory=libs"], log_path, cwd=work)
        jars = [p.name for p in (work / "libs").glob("*.jar")]
        for needed in (f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar", "log4j-core-"):
            if not any(j.startswith(needed) for j in jars):
                raise RigError("kafka", ["mvn", "dependency:copy-dependencies"], log_path,
                               f"{needed} missing from libs/", log_tail(log_path))
        shutil.rmtree(home, ignore_errors=True)
        work.rename(home)
        done.write_text(f"{KAFKA_VERSION}\n")
    return home


# ---------------------------------------------------------------- Go-built binaries

@dataclass(frozen=True)
class KubeBinaries:
    etcd: Path
    kube_apiserver: Path
    kube_scheduler: Path
    kwok: Path


def go_dir() -> Path:
    return cache_dir() / "go"


def kube_binaries() -> KubeBinaries:
    out = go_dir()
    return KubeBinaries(
        etcd=out / f"etcd-{ETCD_VERSION}" / "etcd",
        kube_apiserver=out / f"kube-{KUBE_VERSION}" / "kube-apiserver",
        kube_scheduler=out / f"kube-{KUBE_VERSION}" / "kube-scheduler",
        kwok=out / f"kwok-{KWOK_VERSION}" / "kwok",
    )


def ensure_kube() -> KubeBinaries:
    """etcd, kube-apiserver, kube-scheduler and kwok built from Go modules (cold: ~20-30 min)."""
    ensure_apt("kube")
    bins = kube_binaries()
    if all(os.access(p, os.X_OK) for p in vars(bins).values()):
        return bins
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
        raise RigError("kube", ["go"], cache_dir() / "logs", "the Go toolchain is not installed")
    env = dict(os.environ)
    if shutil.which("go") is None:
        env["PATH"] = "/usr/local/go/bin:" + env.get("PATH", "")
    log_path = cache_dir() / "logs" / f"go-build-{KUBE_VERSION}-{ETCD_VERSION}-{KWOK_VERSION}.log"
    with _lock("go"):
        _run("kube", ["bash", str(RIG_DIR / "build-go.sh"), str(go_dir()), KUBE_VERSION,
                      ETCD_VERSION, KWOK_VERSION], log_path, env=env)
    missing = [str(p) for p in vars(bins).values() if not os.access(p, os.X_OK)]
    if missing:
        raise RigError("kube", ["rig/build-go.sh"], log_path, f"not built: {missing}",
                       log_tail(log_path))
    return bins


# ---------------------------------------------------------------- entry points

def ensure(server: str) -> None:
    """Make one server runnable (cheap when it already is)."""
    if server not in SERVERS:
        raise ValueError(f"unknown server {server!r}; known: {', '.join(SERVERS)}")
    if server == "kafka":
        ensure_kafka()
    elif server == "kube":
        ensure_kube()
    else:
        ensure_apt(server)


def versions() -> dict[str, str]:
    """What the rig runs: Debian package versions as installed, the others as pinned."""
    def deb(pkg: str) -> str:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                             text=True, check=False)
        return f"{pkg} {out.stdout.strip()}" if out.returncode == 0 else f"{pkg} (not installed)"

    return {
        "zookeeper": deb("zookeeper"),
        "mosquitto": deb("mosquitto"),
        "postgres": deb(f"postgresql-{PG_MAJOR}"),
        "prometheus": deb("prometheus"),
        "kafka": f"org.apache.kafka:kafka_{SCALA_VERSION}:{KAFKA_VERSION} (KRaft)",
        "kube": (f"etcd {ETCD_VERSION}, kube-apiserver/kube-scheduler {KUBE_VERSION}, "
                 f"kwok {KWOK_VERSION}"),
    }


def provision(servers: list[str] | None = None) -> None:
    for server in servers or SERVERS:
        t0 = time.monotonic()
        ensure(server)
        print(f"rig: {server} ready ({time.monotonic() - t0:.1f}s)", flush=True)
