"""Install or build every server of the test rig, cached by version.

Debian packages come from apt; Kafka's jars from Maven Central (through `mvn`); etcd,
kube-apiserver, kube-scheduler and kwok are built from the Go module proxy by `rig/build-go.sh`.
Built artefacts live under ``${XDG_CACHE_HOME:-~/.cache}/reconciler-rig/``, one folder per
version, so only the first run pays; a second run only checks that they are there.

    python -m rig provision [zookeeper mosquitto postgres prometheus kafka kube kustomize helm
                             monitoring-crds browser faketime]

Every step that has work to do says so first, with what it costs, and prints a heartbeat line
(`rig/progress.py`) at least every 30 s while it works; a cached step prints one line.
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
from rig.progress import elapsed, heartbeat, step

KAFKA_VERSION = "4.3.1"
LOG4J_VERSION = "2.25.4"  # the log4j-core that kafka_2.13 4.3.1 depends on
SCALA_VERSION = "2.13"
ETCD_VERSION = "v3.6.16"
KUBE_VERSION = "v1.34.4"
KWOK_VERSION = "v0.7.0"
KUSTOMIZE_VERSION = "v5.6.0"  # renders the repository's kustomization.yaml in tests
HELM_VERSION = "v4.3.2"  # lints, renders and installs charts/reconciler in tests
# The newest version of the module github.com/prometheus-operator/prometheus-operator that the
# Go module proxy serves (later ones are served for its pkg/apis/monitoring module only, which
# has no CRD files): its monitoring.coreos.com CRDs for the chart's tests.
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
MONITORING_CRDS = ("servicemonitors", "podmonitors", "prometheusrules")
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
    # not a server: headless Chromium and chromedriver for tests/integration/api/test_fleet_page.py
    "browser": ["chromium", "chromium-driver"],
    # not a server: the chaos run steps its daemon's wall clock with it (tests/chaos/clock.py)
    "faketime": ["libfaketime"],
}
# Servers, and tools the deploy tests run: kustomize and helm, built from Go modules like kube,
# and monitoring-crds, the Prometheus operator's CRDs from the Go module proxy; and browser:
# Debian's Chromium that the fleet page's test drives; faketime: Debian's libfaketime.
SERVERS = [
    "zookeeper",
    "mosquitto",
    "postgres",
    "prometheus",
    "kafka",
    "kube",
    "kustomize",
    "helm",
    "monitoring-crds",
    "browser",
    "faketime",
]


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


def _run(
    server: str,
    argv: list[str],
    log_path: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    what: str | None = None,
) -> None:
    """Run one provisioning command, its output appended to log_path; raise RigError on failure.

    While it runs, a heartbeat line says it is still `what` (default: the command), how long
    it has taken and the log's last line."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log, heartbeat(f"{server}: {what or ' '.join(argv)}", log_path):
        log.write(f"\n$ {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.run(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    if proc.returncode != 0:
        raise RigError(
            server,
            argv,
            log_path,
            f"provisioning failed (exit {proc.returncode})",
            log_tail(log_path),
        )


# ---------------------------------------------------------------- Debian packages


def _dpkg_installed(pkg: str) -> bool:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True, check=False
    )
    return out.returncode == 0 and out.stdout.strip().endswith("install ok installed")


def ensure_apt(server: str) -> None:
    missing = [p for p in APT_PACKAGES.get(server, []) if not _dpkg_installed(p)]
    if not missing:
        return
    log_path = cache_dir() / "logs" / "apt.log"
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", *missing]
    step(
        server,
        f"installing Debian packages {' '.join(missing)} with apt-get",
        cost="~10 s to 2 min depending on the mirror, once; log " + str(log_path),
    )
    with _lock("apt"):
        lists = Path("/var/lib/apt/lists")
        if not any(lists.glob("*_Packages*")):
            _run(
                server,
                [*sudo, "apt-get", "update"],
                log_path,
                env=env,
                what="refreshing apt's package lists",
            )
        try:
            _run(server, install, log_path, env=env, what=f"installing {' '.join(missing)}")
        except RigError:
            # an old package list names versions the mirror no longer has: refresh once
            _run(
                server,
                [*sudo, "apt-get", "update"],
                log_path,
                env=env,
                what="refreshing apt's package lists",
            )
            _run(server, install, log_path, env=env, what=f"installing {' '.join(missing)}")


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
        (work / "pom.xml").write_text(
            KAFKA_POM.format(scala=SCALA_VERSION, version=KAFKA_VERSION, log4j=LOG4J_VERSION)
        )
        log_path = cache_dir() / "logs" / f"kafka-{KAFKA_VERSION}.log"
        step(
            "kafka",
            f"fetching Kafka {KAFKA_VERSION} jars from Maven Central with mvn",
            cost=f"~10 s and 60 MB, cached afterwards in {home}; log {log_path}",
        )
        _run(
            "kafka",
            [
                "mvn",
                "-B",
                "-q",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                "-DoutputDirectory=libs",
            ],
            log_path,
            cwd=work,
            what=f"fetching Kafka {KAFKA_VERSION} jars",
        )
        jars = [p.name for p in (work / "libs").glob("*.jar")]
        for needed in (f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar", "log4j-core-"):
            if not any(j.startswith(needed) for j in jars):
                raise RigError(
                    "kafka",
                    ["mvn", "dependency:copy-dependencies"],
                    log_path,
                    f"{needed} missing from libs/",
                    log_tail(log_path),
                )
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


# What building each Go binary costs here (2 cores): with a cold Go build cache (a fresh
# machine) and with a warm one (only the link step). Printed before the build starts.
GO_BUILD_COST = {
    "etcd": "~2 min cold, ~10 s warm",
    "kwok": "~1 min cold, ~5 s warm",
    "kube-apiserver": "~15-25 min cold on 2 cores, ~30 s warm",
    "kube-scheduler": "~3 min more, built with kube-apiserver",
    "kustomize": "~1 min cold, ~15 s warm",
    "helm": "~5 min cold on 2 cores, ~20 s to 1 min warm (the link)",
}


def _go_env(server: str) -> dict[str, str]:
    """The environment for `go`: Debian's golang or /usr/local/go; RigError without either."""
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
        raise RigError(server, ["go"], cache_dir() / "logs", "the Go toolchain is not installed")
    env = dict(os.environ)
    if shutil.which("go") is None:
        env["PATH"] = "/usr/local/go/bin:" + env.get("PATH", "")
    return env


def ensure_kube() -> KubeBinaries:
    """etcd, kube-apiserver, kube-scheduler and kwok built from Go modules (cold: ~20-30 min)."""
    ensure_apt("kube")
    bins = kube_binaries()
    if all(os.access(p, os.X_OK) for p in vars(bins).values()):
        return bins
    env = _go_env("kube")
    log_path = cache_dir() / "logs" / f"go-build-{KUBE_VERSION}-{ETCD_VERSION}-{KWOK_VERSION}.log"
    names = {
        "etcd": bins.etcd,
        "kwok": bins.kwok,
        "kube-apiserver": bins.kube_apiserver,
        "kube-scheduler": bins.kube_scheduler,
    }
    missing = [name for name, path in names.items() if not os.access(path, os.X_OK)]
    for name in missing:
        step(
            "kube",
            f"building {name} from Go modules",
            cost=f"{GO_BUILD_COST[name]}, cached afterwards in {names[name].parent}",
        )
    step("kube", f"one build script for {', '.join(missing)}", cost=f"log {log_path}")
    with _lock("go"):
        _run(
            "kube",
            [
                "bash",
                str(RIG_DIR / "build-go.sh"),
                str(go_dir()),
                KUBE_VERSION,
                ETCD_VERSION,
                KWOK_VERSION,
            ],
            log_path,
            env=env,
            what="building etcd/kube-apiserver/kube-scheduler/kwok from Go modules",
        )
    missing = [str(p) for p in vars(bins).values() if not os.access(p, os.X_OK)]
    if missing:
        raise RigError(
            "kube", ["rig/build-go.sh"], log_path, f"not built: {missing}", log_tail(log_path)
        )
    return bins


def kustomize_binary() -> Path:
    return go_dir() / f"kustomize-{KUSTOMIZE_VERSION}" / "kustomize"


def helm_binary() -> Path:
    return go_dir() / f"helm-{HELM_VERSION}" / "helm"


def _go_install(tool: str, package: str, binary: Path) -> Path:
    """`go install package` into a .tmp dir beside binary's folder, renamed into place once
    built: an interrupted build leaves no half-made cache entry."""
    if os.access(binary, os.X_OK):
        return binary
    env = {
        **_go_env(tool),
        "CGO_ENABLED": "0",
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
    }
    log_path = cache_dir() / "logs" / f"go-build-{binary.parent.name}.log"
    with _lock("go"):
        if os.access(binary, os.X_OK):
            return binary
        step(
            tool,
            f"building {package} from Go modules",
            cost=f"{GO_BUILD_COST[tool]}, cached afterwards in {binary.parent}; log {log_path}",
        )
        work = binary.parent.with_name(binary.parent.name + ".tmp")
        shutil.rmtree(work, ignore_errors=True)
        _run(
            tool,
            ["go", "install", package],
            log_path,
            env={**env, "GOBIN": str(work)},
            what=f"building {tool}",
        )
        if not os.access(work / binary.name, os.X_OK):
            raise RigError(
                tool, ["go", "install"], log_path, f"{tool} not built", log_tail(log_path)
            )
        shutil.rmtree(binary.parent, ignore_errors=True)
        work.rename(binary.parent)
    return binary


def ensure_kustomize() -> Path:
    """kustomize, built from Go modules: renders kustomization.yaml exactly as `kubectl
    apply -k` does (kubectl embeds it), without needing a kubectl on the machine."""
    return _go_install(
        "kustomize", f"sigs.k8s.io/kustomize/kustomize/v5@{KUSTOMIZE_VERSION}", kustomize_binary()
    )


def ensure_helm() -> Path:
    """helm, built from Go modules: lints, renders and installs charts/reconciler."""
    return _go_install("helm", f"helm.sh/helm/v4/cmd/helm@{HELM_VERSION}", helm_binary())


def monitoring_crds_dir() -> Path:
    return cache_dir() / f"prometheus-operator-crds-{PROMETHEUS_OPERATOR_VERSION}"


def ensure_monitoring_crds() -> Path:
    """The Prometheus operator's ServiceMonitor, PodMonitor and PrometheusRule CRDs
    (monitoring.coreos.com_<plural>.yaml), from its module on the Go module proxy."""
    out = monitoring_crds_dir()
    if (out / ".complete").exists():
        return out
    module = f"github.com/prometheus-operator/prometheus-operator@{PROMETHEUS_OPERATOR_VERSION}"
    log_path = cache_dir() / "logs" / f"{out.name}.log"
    with _lock("go"):
        if (out / ".complete").exists():
            return out
        step(
            "monitoring-crds",
            f"fetching {module} from the Go module proxy for its CRDs",
            cost=f"~10 s and 4 MB, cached afterwards in {out}; log {log_path}",
        )
        _run(
            "monitoring-crds",
            ["go", "mod", "download", "-json", module],
            log_path,
            env={**_go_env("monitoring-crds"), "GOFLAGS": "-mod=mod"},
            what="fetching the prometheus-operator module",
        )
        env = _go_env("monitoring-crds")
        modcache = subprocess.run(
            ["go", "env", "GOMODCACHE"], capture_output=True, text=True, env=env, check=True
        ).stdout.strip()
        source = (
            Path(modcache)
            / f"github.com/prometheus-operator/prometheus-operator@{PROMETHEUS_OPERATOR_VERSION}"
            / "example"
            / "prometheus-operator-crd"
        )
        work = out.with_name(out.name + ".tmp")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for plural in MONITORING_CRDS:
            name = f"monitoring.coreos.com_{plural}.yaml"
            if not (source / name).is_file():
                raise RigError(
                    "monitoring-crds",
                    ["go", "mod", "download"],
                    log_path,
                    f"{name} not in {source}",
                    log_tail(log_path),
                )
            shutil.copyfile(source / name, work / name)
        (work / ".complete").write_text(f"{PROMETHEUS_OPERATOR_VERSION}\n")
        shutil.rmtree(out, ignore_errors=True)
        work.rename(out)
    return out


# ---------------------------------------------------------------- entry points


def ensure(server: str) -> None:
    """Make one server runnable (cheap when it already is)."""
    if server not in SERVERS:
        raise ValueError(f"unknown server {server!r}; known: {', '.join(SERVERS)}")
    if server == "kafka":
        ensure_kafka()
    elif server == "kube":
        ensure_kube()
    elif server == "kustomize":
        ensure_kustomize()
    elif server == "helm":
        ensure_helm()
    elif server == "monitoring-crds":
        ensure_monitoring_crds()
    else:
        ensure_apt(server)


def versions() -> dict[str, str]:
    """What the rig runs: Debian package versions as installed, the others as pinned."""

    def deb(pkg: str) -> str:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, check=False
        )
        return f"{pkg} {out.stdout.strip()}" if out.returncode == 0 else f"{pkg} (not installed)"

    return {
        "zookeeper": deb("zookeeper"),
        "mosquitto": deb("mosquitto"),
        "postgres": deb(f"postgresql-{PG_MAJOR}"),
        "prometheus": deb("prometheus"),
        "kafka": f"org.apache.kafka:kafka_{SCALA_VERSION}:{KAFKA_VERSION} (KRaft)",
        "kube": (
            f"etcd {ETCD_VERSION}, kube-apiserver/kube-scheduler {KUBE_VERSION}, "
            f"kwok {KWOK_VERSION}"
        ),
        "kustomize": f"sigs.k8s.io/kustomize/kustomize/v5 {KUSTOMIZE_VERSION}",
        "helm": f"helm.sh/helm/v4 {HELM_VERSION}",
        "monitoring-crds": (
            f"github.com/prometheus-operator/prometheus-operator {PROMETHEUS_OPERATOR_VERSION} "
            f"({', '.join(MONITORING_CRDS)})"
        ),
        "browser": f"{deb('chromium')}, {deb('chromium-driver')}",
        "faketime": deb("libfaketime"),
    }


def provision(servers: list[str] | None = None) -> None:
    for server in servers or SERVERS:
        t0 = time.monotonic()
        ensure(server)
        took = time.monotonic() - t0
        state = "already there" if took < 1 else f"done in {elapsed(took)}"
        print(f"rig: {server} ready ({state})", flush=True)
