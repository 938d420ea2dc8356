"""A small real Kubernetes control plane: etcd, kube-apiserver, kube-scheduler and kwok.

No kubelet and no controller-manager: kwok plays the nodes (those annotated
``kwok.x-k8s.io/node=fake``) and the pod lifecycle (bound pods become Running; deleted pods go
away). Pods annotated ``kwok.x-k8s.io/status: custom`` are left alone by kwok, so a test can
patch their status (e.g. to Failed) and keep it. kube-scheduler binds pods to nodes by their
requests, as in a real cluster.

Identities (token auth file; the apiserver reads it at start, so these exist from the start):

* ``tokens["admin"]`` (also ``.token``): user ``rig-admin`` in ``system:masters``.
* ``tokens["reconciler"]``: user ``system:serviceaccount:iota:reconciler`` with groups
  ``system:serviceaccounts`` and ``system:serviceaccounts:iota``, no permissions until a
  (Cluster)RoleBinding grants them: bind subject ``{kind: ServiceAccount, name: reconciler,
  namespace: iota}`` or ``{kind: User, name: system:serviceaccount:iota:reconciler}``.
* ``tokens["nobody"]``: user ``rig-nobody``, no groups, no permissions.

``add_token(user, groups)`` adds another one, restarting the apiserver (a few seconds).
"""

from __future__ import annotations

import json
import secrets
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from rig import provision
from rig.errors import RigError, log_tail
from rig.process import Proc, free_port, wait_until
from rig.servers import Server

NODE_ANNOTATION = "kwok.x-k8s.io/node"
STATUS_ANNOTATION = "kwok.x-k8s.io/status"


class Kube(Server):
    """etcd + kube-apiserver + kube-scheduler + kwok, with ``node_count`` fake nodes."""

    name = "kube"
    start_timeout = 120.0

    def __init__(self, base_dir: Path | None = None, node_count: int = 2) -> None:
        super().__init__(base_dir)
        self.port = free_port()
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.kwok_port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca_file = self.dir / "pki" / "apiserver.crt"
        self.kubeconfig = self.dir / "admin.kubeconfig"
        self.tokens: dict[str, str] = {
            "admin": secrets.token_hex(16),
            "reconciler": secrets.token_hex(16),
            "nobody": secrets.token_hex(16),
        }
        self._users: dict[str, tuple[str, list[str]]] = {
            "admin": ("rig-admin", ["system:masters"]),
            "reconciler": (
                "system:serviceaccount:iota:reconciler",
                ["system:serviceaccounts", "system:serviceaccounts:iota"],
            ),
            "nobody": ("rig-nobody", []),
        }
        self.token = self.tokens["admin"]
        self.node_names = [f"kwok-node-{i}" for i in range(node_count)]
        self.bins = provision.kube_binaries()
        self.etcd: Proc | None = None
        self.apiserver: Proc | None = None
        self.scheduler: Proc | None = None
        self.kwok: Proc | None = None
        self._nodes_made = False

    # -------------------------------------------------------------- set-up
    def prepare(self) -> None:
        pki = self.dir / "pki"
        pki.mkdir()
        self.run_once(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                pki / "apiserver.key",
                "-out",
                pki / "apiserver.crt",
                "-days",
                "3650",
                "-subj",
                "/CN=rig-kube-apiserver",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ]
        )
        self.run_once(["openssl", "genrsa", "-out", pki / "sa.key", "2048"])
        self.run_once(["openssl", "rsa", "-in", pki / "sa.key", "-pubout", "-out", pki / "sa.pub"])
        self._write_tokens()
        self.kubeconfig.write_text(self.kubeconfig_for("admin"))
        (self.dir / "kwok.yaml").write_text(
            "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {}\n"
        )
        (self.dir / "etcd").mkdir()

    def _write_tokens(self) -> None:
        rows = []
        for name, tok in self.tokens.items():
            user, groups = self._users[name]
            rows.append(
                f'{tok},{user},{user},"{",".join(groups)}"' if groups else f"{tok},{user},{user}"
            )
        (self.dir / "tokens.csv").write_text("\n".join(rows) + "\n")

    def kubeconfig_for(self, name: str = "admin") -> str:
        """A kubeconfig (text) that authenticates with ``tokens[name]``."""
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "rig",
            "clusters": [
                {
                    "name": "rig",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": name, "user": {"token": self.tokens[name]}}],
            "contexts": [{"name": "rig", "context": {"cluster": "rig", "user": name}}],
        }
        return json.dumps(cfg, indent=2) + "\n"

    # -------------------------------------------------------------- processes
    def _log(self, part: str) -> Path:
        return self.dir / f"{part}.log"

    def launch(self) -> None:
        b = self.bins
        if self.etcd is None:
            self.etcd = Proc(
                "kube/etcd",
                [
                    b.etcd,
                    "--name=rig",
                    f"--data-dir={self.dir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                    f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                    f"--initial-cluster=rig=http://127.0.0.1:{self.etcd_peer_port}",
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ],
                self._log("etcd"),
            )
            self.apiserver = Proc(
                "kube/kube-apiserver",
                [
                    b.kube_apiserver,
                    f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={self.port}",
                    f"--cert-dir={self.dir / 'pki'}",
                    f"--tls-cert-file={self.dir / 'pki' / 'apiserver.crt'}",
                    f"--tls-private-key-file={self.dir / 'pki' / 'apiserver.key'}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={self.dir / 'pki' / 'sa.pub'}",
                    f"--service-account-signing-key-file={self.dir / 'pki' / 'sa.key'}",
                    f"--token-auth-file={self.dir / 'tokens.csv'}",
                    "--authorization-mode=RBAC",
                    # TaintNodesByCondition taints new nodes not-ready; with no controller-manager
                    # nothing would lift the taint and no pod would ever be scheduled
                    "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
                    "--allow-privileged=true",
                    "--enable-priority-and-fairness=false",
                    "--profiling=false",
                    "--endpoint-reconciler-type=none",
                    "--v=1",
                ],
                self._log("kube-apiserver"),
                # it stops listening at once, then lingers ~20 s on open watches
                stop_timeout=3,
            )
            self.scheduler = Proc(
                "kube/kube-scheduler",
                [
                    b.kube_scheduler,
                    f"--kubeconfig={self.kubeconfig}",
                    f"--authentication-kubeconfig={self.kubeconfig}",
                    f"--authorization-kubeconfig={self.kubeconfig}",
                    "--leader-elect=false",
                    "--secure-port=0",
                    "--v=1",
                ],
                self._log("kube-scheduler"),
            )
            self.kwok = Proc(
                "kube/kwok",
                [
                    b.kwok,
                    f"--kubeconfig={self.kubeconfig}",
                    f"--config={self.dir / 'kwok.yaml'}",
                    f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
                    f"--disregard-status-with-annotation-selector={STATUS_ANNOTATION}=custom",
                    "--cidr=10.244.0.1/16",
                    "--node-ip=127.0.0.1",
                    f"--server-address=127.0.0.1:{self.kwok_port}",
                ],
                self._log("kwok"),
            )
            self.procs = [self.etcd, self.apiserver, self.scheduler, self.kwok]
        assert self.apiserver and self.scheduler and self.kwok
        if not self.etcd.alive():
            self.etcd.start()
            wait_until(self._etcd_healthy, procs=[self.etcd], timeout=60, what="healthy")
        if not self.apiserver.alive():
            self.apiserver.start()
            wait_until(
                self._apiserver_ready,
                procs=[self.etcd, self.apiserver],
                timeout=self.start_timeout,
                what="ready (/readyz)",
                interval=0.5,
            )
            if self._nodes_made:
                # A restarted apiserver: the scheduler's and kwok's watches reconnect by
                # themselves, but not always (a CI run saw pods stay Pending for 90 s after
                # one); fresh processes start from a fresh list, in about a second.
                for p in (self.scheduler, self.kwok):
                    p.stop(timeout=5)
        if not self._nodes_made:
            self._bootstrap_objects()
        for p in (self.scheduler, self.kwok):
            if not p.alive():
                p.start()
        if not self._nodes_made:
            wait_until(
                self._nodes_ready,
                procs=self.procs,
                timeout=60,
                what=f"nodes {self.node_names} Ready (kwok)",
            )
            self._nodes_made = True

    def stop(self) -> None:
        """Stop the apiserver only (etcd, scheduler and kwok keep running and reconnect)."""
        if self.apiserver is not None:
            self.apiserver.stop()

    def stop_all(self) -> None:
        for p in (self.kwok, self.scheduler, self.apiserver, self.etcd):
            if p is not None:
                p.stop()

    @property
    def log_path_by_part(self) -> dict[str, Path]:
        return {
            part: self._log(part) for part in ("etcd", "kube-apiserver", "kube-scheduler", "kwok")
        }

    # -------------------------------------------------------------- checks
    def _etcd_healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2) as r:
            return bool(json.loads(r.read()).get("health") == "true")

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        token: str | None = None,
        timeout: float = 10,
    ) -> tuple[int, Any]:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def _apiserver_ready(self) -> bool:
        status, _ = self._request("GET", "/readyz", timeout=3)
        return status == 200

    def _ok(self, status: int, body: Any, what: str, allow: tuple[int, ...] = ()) -> None:
        if status >= 300 and status not in allow:
            assert self.apiserver is not None
            raise RigError(
                "kube",
                self.apiserver.argv,
                self._log("kube-apiserver"),
                f"{what}: HTTP {status}: {str(body)[:500]}",
                log_tail(self._log("kube-apiserver")),
            )

    def _bootstrap_objects(self) -> None:
        for ns in ("iota",):
            st, body = self._request(
                "POST",
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            )
            self._ok(st, body, f"create namespace {ns}", allow=(409,))
        for name in self.node_names:
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {NODE_ANNOTATION: "fake"},
                    "labels": {
                        "type": "kwok",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                    },
                },
                "spec": {},
                "status": {
                    "capacity": {"cpu": "16", "memory": "32Gi", "pods": "110"},
                    "allocatable": {"cpu": "16", "memory": "32Gi", "pods": "110"},
                },
            }
            st, body = self._request("POST", "/api/v1/nodes", node)
            self._ok(st, body, f"create node {name}", allow=(409,))

    def _nodes_ready(self) -> bool:
        st, body = self._request("GET", "/api/v1/nodes")
        if st != 200:
            return False
        ready = {
            n["metadata"]["name"]
            for n in body.get("items", [])
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        }
        return set(self.node_names) <= ready

    # -------------------------------------------------------------- for tests
    def api_client(self, token: str | None = None) -> Any:
        """A new kubernetes.client.ApiClient for this cluster (admin unless token given)."""
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        cfg.ssl_ca_cert = str(self.ca_file)
        cfg.verify_ssl = True
        cfg.api_key = {"authorization": token or self.token}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(cfg)

    def add_token(self, user: str, groups: list[str] | None = None, name: str | None = None) -> str:
        """Add a bearer token for ``user`` in ``groups``; restarts the apiserver to load it."""
        name = name or user
        tok = secrets.token_hex(16)
        self.tokens[name] = tok
        self._users[name] = (user, list(groups or []))
        self._write_tokens()
        if self.apiserver is not None and self.apiserver.alive():
            self.stop()
            self.start()
        return tok

    def create_namespace(self, name: str) -> None:
        st, body = self._request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        self._ok(st, body, f"create namespace {name}")

    def delete_namespace(self, name: str) -> None:
        """Delete a namespace for good. No controller-manager runs, so this deletes its pods
        (at once) and then finalizes the namespace itself; other objects stay in etcd."""
        self._request(
            "DELETE",
            f"/api/v1/namespaces/{name}/pods",
            {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
        )
        self._request("DELETE", f"/api/v1/namespaces/{name}")
        st, ns = self._request("GET", f"/api/v1/namespaces/{name}")
        if st == 200:
            ns.setdefault("spec", {})["finalizers"] = []
            self._request("PUT", f"/api/v1/namespaces/{name}/finalize", ns)
