"""Kubernetes: create, delete and list the pods this daemon manages, per resource kind.

Level-triggered, like a ReplicaSet: there is no "recreate". A dead pod is deleted (with its
uid as a precondition) and, on a later pass, created again once its name is free; until
then a create answers `PodStillTerminating` (a `NotYet`). Nothing here waits for a pod to
go away, so nothing sleeps on the loop's thread.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient

from reconciler.adapters.kube.client import KubeError, PodStillTerminating, _Api
from reconciler.adapters.kube.convert import pod_from_dict
from reconciler.adapters.kube.quota import KubeQuota, QuotaExceeded, is_quota_refusal
from reconciler.adapters.kube.usage import KubeUsage
from reconciler.domain.errors import NotLeader, NotYet
from reconciler.domain.model import DEAD_PHASES, Pod
from reconciler.domain.podspec import (
    CREATED_BY_ANNOTATION,
    KIND_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    PodTemplate,
    pod_labels,
    render_pod,
)
from reconciler.domain.slowstart import SlowStartResult, slow_start


class KubePods(KubeUsage, KubeQuota):
    """Create, delete and list the pods this daemon manages, per resource kind.

    Also reads their usage and the nodes' room (`pod_usage`, `node_capacity`: see `usage`)
    and the namespace's ResourceQuotas (`quota_room`: see `quota`).
    """

    def __init__(
        self,
        api_client: ApiClient,
        templates: dict[str, PodTemplate],
        *,
        request_timeout: float = 10,
        gate: Callable[[], bool] | None = None,
        created_by: str | None = None,
    ) -> None:
        self._api = _Api(api_client, request_timeout)
        self.templates = templates
        self._writes = 0
        self._writes_lock = threading.Lock()
        # Leader election: may this daemon write now (leader with a fresh proof)? A write
        # without it raises NotLeader and is not sent. None: no election, always.
        self.gate = gate
        # Annotated on every pod this daemon creates (its identity): who made which pod.
        self.created_by = created_by
        self._refused_namespaces = set()  # a create refused by a quota since its last read

    def use_templates(self, templates: dict[str, PodTemplate]) -> None:
        """Render pods from `templates` from now on (each policy load brings its own)."""
        self.templates = templates

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
        """The pods of one kind, name -> Pod: those with our labels, and those named
        `<instanceName>-<id>` without them (made by the old orchestrator: `labelled=False`,
        instance id from the name; the planner adopts them). A pod of that name that carries
        another manager's or another kind's labels is not ours."""
        t = self._template(kind)
        items, _ = self._api.list_all(
            f"list pods {kind}", self._api.core.list_namespaced_pod, t.namespace
        )
        named = re.compile(rf"^{re.escape(t.instance_name)}-(\d+)$")
        out: dict[str, Pod] = {}
        for item in items:
            labels = (item.get("metadata") or {}).get("labels") or {}
            pod = pod_from_dict(item)
            if labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE:
                if labels.get(KIND_LABEL) == kind:
                    out[pod.name] = pod
                continue
            m = named.match(pod.name)
            if m is None or labels.get(MANAGED_BY_LABEL) or labels.get(KIND_LABEL):
                continue
            iid = pod.instance_id if pod.instance_id is not None else int(m.group(1))
            out[pod.name] = replace(pod, instance_id=iid, labelled=False)
        return out

    def adopt_pod(self, kind: str, name: str, instance_id: int, *, uid: str | None = None) -> None:
        """Give a pod found by its name our labels (a JSON merge patch of labels only; with
        `uid`, only that incarnation: the apiserver refuses a patch whose uid differs)."""
        t = self._template(kind)
        meta: dict[str, Any] = {"labels": pod_labels(t, instance_id)}
        if uid:
            meta["uid"] = uid
        self._count_write()
        try:
            self._api.send(
                f"adopt pod {name}",
                "PATCH",
                f"/api/v1/namespaces/{t.namespace}/pods/{name}",
                {"metadata": meta},
                content_type="application/merge-patch+json",
            )
        except KubeError as e:
            if e.status == 404:
                return  # gone meanwhile: the next pass creates the instance's pod
            raise

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
            if is_quota_refusal(e):
                self.quota_refused(t.namespace)
                raise QuotaExceeded(str(e)) from e
            if e.status != 409:
                raise
        existing = self.get_pod(kind, name)
        if existing is None:  # deleted between our create and our get: free next time
            raise PodStillTerminating(f"pod {t.namespace}/{name} was just deleted; retry")
        if existing.terminating:
            raise PodStillTerminating(f"pod {t.namespace}/{name} is still terminating")
        if existing.phase in DEAD_PHASES:
            # Not a create that succeeded: a dead pod holds the name. A full pass lists it
            # (by name, if it lacks our labels) and replaces it.
            raise NotYet(f"pod {t.namespace}/{name} exists and is {existing.phase}: replaced next")
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

        An expected refusal (`NotYet`: the name is still held by a terminating or a dead
        pod) is not a failing API: it does not stop the ramp and is reported in `failed` for
        the caller to retry later. `NotLeader` does stop it: no create may go out.
        """

        def one(iid: int) -> Callable[[], Pod | NotYet]:
            def run() -> Pod | NotYet:
                try:
                    return self.create_pod(kind, iid)
                except NotLeader:
                    raise
                except NotYet as e:
                    return e

            return run

        raw = slow_start([one(i) for i in instance_ids], max_workers=max_workers)
        out: SlowStartResult[Pod] = SlowStartResult(
            failed=list(raw.failed), skipped=list(raw.skipped)
        )
        for i, v in raw.succeeded:
            if isinstance(v, NotYet):
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
