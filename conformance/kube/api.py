"""Kubernetes access for the harness: apply, release, get, delete, waits, pods, exec, logs.

``Kube`` is the one object the rest of the library talks to (typed as ``KubeLike`` where a stand-in may
take its place). It puts together the modules that each do one thing:

* ``kube_client``: the connection (kubeconfig, proxy rule, discovery, raw REST calls);
* ``kube_errors``: what the server's answers mean and which are transient;
* ``kube_apply``: what a server-side apply sends and what counts as created;
* ``kube_status``: judging conditions and rollouts;
* ``kube_exec``: exec and logs inside pods;
* ``conformance.kube.kube_like``: ``KubeLike``, the part of ``Kube`` the rest of the library uses;
* ``conformance.kube.polling``: the waits and retries ``Kube`` inherits from ``KubePolling``;
* ``conformance.core.poll``: every wait and retry, with deadlines named after ``conformance.core.timeouts``.

The clock and the sleep are injectable so tests of the waits need no real waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conformance.core import manifests, progress
from conformance.core.timeouts import DEFAULT_TIMEOUTS, Timeouts
from conformance.images.image_map import NO_IMAGE_MAP, ImageMap
from conformance.kube.apply import (
    CRD_API_VERSION,
    CRD_KIND,
    apply_body,
    being_deleted,
    group_of,
    identity,
    kinds_defined,
    release_intent,
    was_created,
)
from conformance.kube.client import (
    KubeClient,
    Response,
    bypass_environment_proxy_for_loopback,
)
from conformance.kube.errors import (
    KubeApiError,
    KubeConflictError,
    KubeError,
    KubeUnreachableError,
)
from conformance.kube.exec import exec_in_pod, logs_since_seconds, read_log
from conformance.kube.objects import AppliedObject, ExecResult, ObjectRef, PodInfo, pod_info
from conformance.kube.polling import KubePolling
from conformance.kube.status import (
    ROLLOUT_KINDS,
    RolloutProgress,
    condition_met,
    describe_condition,
    rollout_progress,
)

__all__ = [
    "CRD_API_VERSION",
    "FIELD_MANAGER",
    "AppliedObject",
    "ExecResult",
    "Kube",
    "KubeApiError",
    "KubeConflictError",
    "KubeError",
    "KubeUnreachableError",
    "ObjectRef",
    "PodInfo",
    "RolloutProgress",
    "bypass_environment_proxy_for_loopback",
    "logs_since_seconds",
    "rollout_progress",
]

FIELD_MANAGER = "egress-conformance"

#: Upper bound of one REST request; waits also cap it by what is left of their deadline.
DEFAULT_REQUEST_TIMEOUT = 30.0
#: Pause between two looks at the API server in a wait (not a deadline: those come from ``Timeouts``).
DEFAULT_POLL_INTERVAL = 0.5

_GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"


class Kube(KubePolling):
    """Typed access to one cluster through its own ApiClient."""

    def __init__(
        self,
        kubeconfig: Path,
        context: str | None = None,
        field_manager: str = FIELD_MANAGER,
        *,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        image_map: ImageMap = NO_IMAGE_MAP,
    ):
        self.field_manager = field_manager
        #: Every applied workload runs the images of this map (``--image-map``).
        self.image_map = image_map
        self.timeouts = timeouts
        self._poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._client = KubeClient(kubeconfig, context, request_timeout=request_timeout)

    # ---- lifecycle ------------------------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- reachability and version ---------------------------------------------------------------------

    def check_reachable(self) -> None:
        """One quick GET /version; KubeUnreachableError naming the server and the kubeconfig when no answer."""
        self._client.check_reachable()

    def server_version(self) -> str:
        """``v1.35.0``-style git version of the API server."""
        version = self._client.check_reachable()
        if not version:
            raise KubeError(f"{self.host}/version has no gitVersion")
        return version

    # ---- apply and release ----------------------------------------------------------------------------

    def apply(
        self, docs: Iterable[Mapping[str, Any]], default_namespace: str | None = None, *, dry_run: bool = False
    ) -> list[AppliedObject]:
        """Server-side apply each document in order: fieldValidation=Strict, our field manager, no force.

        A field another manager owns with a different value is a ``KubeConflictError`` naming that manager:
        the harness never takes fields over. Transient answers are retried within the ``apply`` deadline,
        and an object still being deleted is applied again once it is gone. After a
        CustomResourceDefinition, a later document of a kind it defines waits for the CRD to be Established
        and for discovery to serve the kind. ``dry_run`` asks the server to validate without persisting.
        """
        applied: list[AppliedObject] = []
        # (group, kind) -> name of a CRD applied in this call and not yet seen Established
        pending_crds: dict[tuple[str, str], str] = {}
        for index, doc in enumerate(self.image_map.rewrite(docs)):
            api_version, kind, _ = identity(doc, index)
            crd_name = pending_crds.pop((group_of(api_version), kind), None)
            if crd_name is not None:
                self.wait_crds_established([crd_name], self.timeouts.crd_established)
            resource = self._resource(api_version, kind)
            ref, body = apply_body(doc, index, bool(resource.namespaced), default_namespace)
            response = self._apply_one(resource, ref, body, dry_run)
            applied.append(
                AppliedObject(ref, was_created(response.status, response.body, self.field_manager), response.body)
            )
            defined = kinds_defined(body)
            if defined is not None and not dry_run:
                pending_crds[defined] = ref.name
        return applied

    def _apply_one(self, resource: Any, ref: ObjectRef, body: dict[str, Any], dry_run: bool) -> Response:
        """Apply, retrying transient answers; an object being deleted is applied again once it is gone."""
        return self._retry(
            "apply",
            self.timeouts.apply,
            lambda: self._client.server_side_apply(resource, ref, body, self.field_manager, dry_run=dry_run),
            done=lambda response: not being_deleted(response.body),
            not_done=f"apply {ref}: the object is being deleted and is still there",
        )

    def apply_manifest(
        self,
        relative: str | Path,
        variables: Mapping[str, str] | None = None,
        default_namespace: str | None = None,
    ) -> list[AppliedObject]:
        """Render a file from manifests/ (``conformance.core.manifests.render``) and apply it."""
        return self.apply(manifests.render(relative, variables), default_namespace)

    def release(self, refs: Iterable[ObjectRef]) -> None:
        """Give up every field the harness set on objects it did not create (in reverse order).

        Server-side applies an intent that claims no field, with our field manager: fields only the harness
        set disappear, fields other managers own (or share) stay. Missing objects are skipped.
        """
        for ref in reversed(list(refs)):
            resource = self._client.resource_or_none(ref)
            if resource is None:
                continue
            current = self._client.get(resource, ref)
            if current is None:
                continue
            uid = (current.get("metadata") or {}).get("uid")
            self._release_one(resource, ref, release_intent(ref, str(uid) if uid else None))

    def _release_one(self, resource: Any, ref: ObjectRef, intent: dict[str, Any]) -> None:
        try:
            self._retry(
                "apply",
                self.timeouts.apply,
                lambda: self._client.server_side_apply(resource, ref, intent, self.field_manager, dry_run=False),
            )
        except KubeApiError as exc:
            if not (exc.not_found or exc.uid_precondition_failed):
                raise
            # Deleted (or replaced by a namesake) since we looked: nothing of ours is left to release.

    # ---- get / patch / delete -------------------------------------------------------------------------

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The object as a dict, or None when it (or its kind) does not exist."""
        resource = self._client.resource_or_none(ref)
        if resource is None:
            return None
        return self._client.get(resource, ref)

    def merge_patch(self, ref: ObjectRef, patch: Mapping[str, Any]) -> dict[str, Any]:
        """JSON merge patch (application/merge-patch+json) under our field manager; returns the updated object."""
        resource = self._client.resource_or_none(ref)
        if resource is None:
            raise KubeError(f"merge patch {ref}: {ref.kind} ({ref.api_version}) is not served by {self.host}")
        return self._client.merge_patch(resource, ref, dict(patch), self.field_manager)

    def delete(self, refs: Iterable[ObjectRef], timeout: float, wait: bool = True) -> None:
        """Delete (missing objects are fine) and, with ``wait``, poll until every one is gone.

        Objects are deleted in reverse order (dependents before what they depend on) with background
        propagation; ``timeout`` bounds the whole call.
        """
        started = self._clock()
        deleted: list[tuple[ObjectRef, Any]] = []
        for ref in reversed(list(refs)):
            resource = self._client.resource_or_none(ref)
            if resource is None:
                continue
            left = max(1.0, timeout - (self._clock() - started))
            if self._client.delete(resource, ref, min(left, self._client.request_timeout)):
                deleted.append((ref, resource))
        if not wait or not deleted:
            return
        remaining = list(deleted)

        def still_there() -> str | None:
            for item in list(remaining):
                ref, resource = item
                if self._client.get(resource, ref, self._request_timeout_until(started + timeout)) is None:
                    remaining.remove(item)
            return ", ".join(f"{ref} still exists" for ref, _ in remaining) or None

        with progress.step(f"waiting for {len(deleted)} deleted object(s) to disappear"):
            self._wait(f"deleting {len(deleted)} object(s)", "delete", timeout, still_there, started=started)

    def _request_timeout_until(self, deadline: float) -> float:
        return max(1.0, min(self._client.request_timeout, deadline - self._clock()))

    # ---- waits ----------------------------------------------------------------------------------------

    def wait_condition(
        self, ref: ObjectRef, condition_type: str, status: str = "True", *, timeout: float, deadline_name: str
    ) -> dict[str, Any]:
        """Poll until the object's condition ``condition_type`` has ``status`` for its current generation
        (Gateway Programmed, ServiceEntry istio.io/WaypointBound, CRD Established, ...); returns the object.
        """
        resource = self._resource(ref.api_version, ref.kind)
        seen: list[dict[str, Any]] = []

        def not_met() -> str | None:
            obj = self._client.get(resource, ref)
            if obj is None:
                return f"{ref} not found"
            seen[:] = [obj]
            return None if condition_met(obj, condition_type, status) else describe_condition(obj, condition_type)

        with progress.step(f"waiting for {ref} to be {condition_type}={status}"):
            self._wait(f"{ref} {condition_type}={status}", deadline_name, timeout, not_met)
        return seen[0]

    def wait_crds_established(self, names: Iterable[str], timeout: float) -> None:
        pending = list(dict.fromkeys(names))
        if not pending:
            return
        resource = self._resource(CRD_API_VERSION, CRD_KIND)

        def not_established() -> str | None:
            states = []
            for name in list(pending):
                crd = self._client.get(resource, ObjectRef(CRD_API_VERSION, CRD_KIND, name))
                if crd is None:
                    states.append(f"{name}: not found")
                elif condition_met(crd, "Established"):
                    pending.remove(name)
                else:
                    states.append(f"{name}: {describe_condition(crd, 'Established')}")
            return "; ".join(states) or None

        with progress.step(f"waiting for CRD(s) {', '.join(pending)} to be Established"):
            self._wait("CRDs Established", "crd_established", timeout, not_established)

    def wait_rollout(self, kind: str, namespace: str, name: str, timeout: float) -> None:
        """Deployment / DaemonSet / StatefulSet: observed generation current and all replicas updated+ready."""
        canonical = ROLLOUT_KINDS.get(kind.lower())
        if canonical is None:
            raise KubeError(f"rollout status is defined for Deployment, DaemonSet and StatefulSet, not {kind}")
        ref = ObjectRef("apps/v1", canonical, name, namespace)
        resource = self._resource(ref.api_version, canonical)

        def not_rolled_out() -> str | None:
            obj = self._client.get(resource, ref)
            if obj is None:
                return f"{ref} not found"
            state = rollout_progress(canonical, obj)
            return None if state.done else state.message

        with progress.step(f"waiting for rollout of {ref}"):
            self._wait(f"rollout of {ref}", "rollout", timeout, not_rolled_out)

    def wait_gateway_programmed(self, namespace: str, name: str, timeout: float) -> None:
        """Gateway API Gateway with condition Programmed=True for its current generation."""
        ref = ObjectRef(_GATEWAY_API_VERSION, "Gateway", name, namespace)
        self.wait_condition(ref, "Programmed", timeout=timeout, deadline_name="gateway_programmed")

    # ---- pods, exec, logs -----------------------------------------------------------------------------

    def pods(self, namespace: str, label_selector: str) -> list[PodInfo]:
        """Pods behind the selector, by name; pods being deleted are left out (never a probe's choice)."""
        resource = self._resource("v1", "Pod")
        items = self._client.list(resource, namespace, label_selector, f"list pods {namespace} -l {label_selector}")
        infos = [pod_info(item) for item in items]
        return sorted((info for info in infos if not info.terminating), key=lambda info: info.name)

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        """One pod by name (``terminating`` tells whether it is being deleted); None when it does not exist."""
        obj = self.get(ObjectRef("v1", "Pod", name, namespace))
        return None if obj is None else pod_info(obj)

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Every object of a kind as dicts: in ``namespace``, or in all namespaces when None."""
        resource = self._resource(api_version, kind)
        where = f" in {namespace}" if namespace else " in all namespaces"
        what = f"list {kind}{where}" + (f" -l {label_selector}" if label_selector else "")
        return self._client.list(resource, namespace, label_selector, what)

    def exec(self, namespace: str, pod: str, command: list[str], container: str | None, timeout: float) -> ExecResult:
        """Run a command; stdout, stderr and exit code kept apart; bounded by ``timeout``.

        A non-zero exit is a result, not an error. Anything else the server reports on the error channel
        (container gone, runtime failure), a refused stream, or the deadline raises KubeError.
        """
        return exec_in_pod(self._client, namespace, pod, command, container, timeout, self._clock)

    def logs(self, namespace: str, label_selector: str, container: str | None, since: datetime) -> dict[str, str]:
        """Log text since ``since`` of every pod behind the selector, by pod name.

        Uses ``sinceSeconds`` computed here rather than ``sinceTime``: the window is then measured on one
        clock (ours) instead of comparing our timestamp with the node's, so skew between the test host and
        the cluster cannot hide lines; and the client library exposes only ``since_seconds`` on this call.
        """
        since_seconds = logs_since_seconds(since, self._wall_clock())
        return {
            pod.name: read_log(self._client, namespace, pod.name, container, since_seconds)
            for pod in self.pods(namespace, label_selector)
        }
