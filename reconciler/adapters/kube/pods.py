"""Kubernetes: create, delete and list the pods this daemon manages, per resource kind.

Level-triggered, like a ReplicaSet: there is no "recreate". A dead pod is deleted (with its
uid as a precondition) and, on a later pass, created again once its name is free; until
then a create answers `PodStillTerminating` (a `NotYet`). Nothing here waits for a pod to
go away, so nothing sleeps on the loop's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient

from reconciler.adapters.kube.client import KubeError, PodStillTerminating, _Api
from reconciler.adapters.kube.convert import pod_from_dict
from reconciler.adapters.kube.usage import KubeUsage
from reconciler.model import Pod
from reconciler.podspec import CREATED_BY_ANNOTATION, PodTemplate, managed_selector, render_pod
from reconciler.ports import NotLeader
from reconciler.slowstart import SlowStartResult, slow_start


class KubePods(KubeUsage):
    """Create, delete and list the pods this daemon manages, per resource kind.

    Also reads their usage and the nodes' room (`pod_usage`, `node_capacity`: see `usage`).
    """

    def __init__(
        self,
        api_client: ApiClient,
        templates: dict[str, PodTemplate],
        *,
        request_timeout: float = 10,
    ) -> None:
        self._api = _Api(api_client, request_timeout)
        self.templates = templates
        self._writes = 0
        self._writes_lock = threading.Lock()
        # Leader election: may this daemon write now (leader with a fresh proof)? A write
        # without it raises NotLeader and is not sent. None: no election, always.
        self.gate: Callable[[], bool] | None = None
        # Annotated on every pod this daemon creates (its identity): who made which pod.
        self.created_by: str | None = None

    # Writes sent to the apiserver (creates, deletes, patches), whatever their outcome: a
    # converged pass must make none, and the tests and bench read this to prove it.
    @property
    def writes(self) -> int:
        return self._writes

    def _count_write(self) -> None:
        """Called right before every write: refuses it unless this daemon may act."""
        if self.gate is not None and not self.gate():
            raise NotLeader("not the leader (or leadership not proven): no pod write")
        with self._writes_lock:
            self._writes += 1

    def _template(self, kind: str) -> PodTemplate:
        try:
            return self.templates[kind]
        except KeyError:
            raise KeyError(f"no pod template for kind {kind!r}") from None

    def list_pods(self, kind: str) -> dict[str, Pod]:
        """Managed pods of one kind (by label, never by name), name -> Pod."""
        t = self._template(kind)
        items, _ = self._api.list_all(
            f"list pods {kind}",
            self._api.core.list_namespaced_pod,
            t.namespace,
            label_selector=managed_selector(kind),
        )
        return {p.name: p for p in map(pod_from_dict, items)}

    def get_pod(self, kind: str, name: str) -> Pod | None:
        t = self._template(kind)
        try:
            d = self._api.call(
                f"get pod {name}", self._api.core.read_namespaced_pod, name, t.namespace
            )
        except KubeError as e:
            if e.status == 404:
                return None
            raise
        return pod_from_dict(d)

    def create_pod(self, kind: str, instance_id: int) -> Pod:
        """Create the instance's pod from its template; returns the pod as it now exists.

        409 AlreadyExists is not an error when the existing pod is live (a previous create
        whose answer was lost, or a watch that lagged): that pod is returned, and the caller
        judges its phase as for any listed pod. When the name is held by a pod still being
        deleted, raises PodStillTerminating: the name frees up soon, retry on a later pass.
        """
        t = self._template(kind)
        body = render_pod(t, instance_id)
        name = body["metadata"]["name"]
        if self.created_by:
            body["metadata"].setdefault("annotations", {})[CREATED_BY_ANNOTATION] = self.created_by
        self._count_write()
        try:
            d = self._api.send(
                f"create pod {name}", "POST", f"/api/v1/namespaces/{t.namespace}/pods", body
            )
            return pod_from_dict(d)
        except KubeError as e:
            if e.status != 409:
                raise
        existing = self.get_pod(kind, name)
        if existing is None:  # deleted between our create and our get: free next time
            raise PodStillTerminating(f"pod {t.namespace}/{name} was just deleted; retry")
        if existing.terminating:
            raise PodStillTerminating(f"pod {t.namespace}/{name} is still terminating")
        return existing

    def delete_pod(
        self,
        kind: str,
        name: str,
        grace_seconds: int | None = None,
        *,
        uid: str | None = None,
    ) -> None:
        """Delete a pod; already gone (404) counts as done.

        With `uid`, only that incarnation is deleted (a precondition): a pod someone already
        recreated under the same name is left alone (the apiserver answers 409, also done).
        Returns once the apiserver accepted the delete, not once the pod is gone: a Failed
        or Succeeded pod goes at once, a Running one after its grace period. The caller
        creates the pod again on a later pass, when the name is free (until then
        `create_pod` raises PodStillTerminating).
        """
        t = self._template(kind)
        body: dict[str, Any] = {}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        if uid:
            body["preconditions"] = {"uid": uid}
        self._count_write()
        try:
            self._api.send(
                f"delete pod {name}",
                "DELETE",
                f"/api/v1/namespaces/{t.namespace}/pods/{name}",
                body or None,
            )
        except KubeError as e:
            if e.status == 404 or (e.status == 409 and uid):
                return
            raise

    def create_pods(
        self, kind: str, instance_ids: Sequence[int], *, max_workers: int = 8
    ) -> SlowStartResult[Pod]:
        """Create many pods in slow-start batches (1, 2, 4, ...), stopping at a failure.

        PodStillTerminating is an expected answer, not a failing API: it does not stop the
        ramp and is reported in `failed` for the caller to retry later.
        """

        def one(iid: int) -> Callable[[], Pod | PodStillTerminating]:
            def run() -> Pod | PodStillTerminating:
                try:
                    return self.create_pod(kind, iid)
                except PodStillTerminating as e:
                    return e

            return run

        raw = slow_start([one(i) for i in instance_ids], max_workers=max_workers)
        out: SlowStartResult[Pod] = SlowStartResult(
            failed=list(raw.failed), skipped=list(raw.skipped)
        )
        for i, v in raw.succeeded:
            if isinstance(v, PodStillTerminating):
                out.failed.append((i, v))
            else:
                out.succeeded.append((i, v))
        return out

    def check_reachable(self, timeout: float = 2.0) -> None:
        """A cheap apiserver round trip for /readyz (GET /version, any identity may read it).

        Raises `SourceUnavailable` (unreachable, 5xx) or `KubeError` saying what went wrong.
        """
        self._api.call(
            "apiserver /version",
            client.VersionApi(self._api.client).get_code,
            _request_timeout=timeout,
        )
