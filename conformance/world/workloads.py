"""The scenarios' client workloads: which exist, and deploying them into a data-plane mode.

Each client is a manifest in ``manifests/workloads/`` (the seeds' ``sleep``, ``sleep-a``, ``nginx``, and a
``sleep`` without a sidecar) placed in the namespace the seed uses. Its namespace is labelled for the mode
(``istio-injection=enabled`` or ``istio.io/dataplane-mode=ambient``) and gets ``sleep-secret`` (the run's
test CA and client certificate). A deployment is ready when its rollout is done and its pod is in the mesh
the way the mode says: an ``istio-proxy`` container (a native sidecar — an init container — since Istio
1.27 on Kubernetes >= 1.33) or ztunnel's redirection annotation. What a deployment created is deleted when
the mode's checks end; what it changed (an existing namespace's label) is released.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from conformance.core import manifests, progress
from conformance.core.expect import eventually
from conformance.core.timeouts import Timeouts
from conformance.engine.runtime import Dataplane, Workload, WorkloadSpec
from conformance.kube.api import Kube, KubeError, ObjectRef
from conformance.settings.options import MeshMode
from conformance.world.external import PROBE_CONTAINER, PROBE_MANIFEST, PROBE_SELECTOR

SIDECAR_CONTAINER = "istio-proxy"
#: Set on a pod by the istio-cni node agent once ztunnel redirects its traffic.
AMBIENT_REDIRECTION_ANNOTATION = "ambient.istio.io/redirection"

SLEEP = WorkloadSpec("default", "sleep", "workloads/sleep.yaml", "sleep", "sleep", MappingProxyType({"app": "sleep"}))
FRONTEND_SLEEP = WorkloadSpec(
    "demo-frontend", "sleep", "workloads/sleep.yaml", "sleep", "sleep", MappingProxyType({"app": "sleep"})
)
FRONTEND_SLEEP_WITHOUT_SIDECAR = WorkloadSpec(
    "demo-frontend",
    "sleep-without-sidecar",
    "workloads/sleep-without-sidecar.yaml",
    "sleep",
    "default",
    MappingProxyType({"app": "sleep-without-sidecar"}),
    in_mesh=False,
)
SLEEP_A = WorkloadSpec(
    "mytest", "sleep-a", "workloads/sleep-a.yaml", "sleep", "default", MappingProxyType({"app": "sleep-a"})
)
NGINX = WorkloadSpec("default", "nginx", "workloads/nginx.yaml", "nginx", "default", MappingProxyType({"app": "nginx"}))

WORKLOADS: Mapping[str, WorkloadSpec] = MappingProxyType(
    {spec.ref: spec for spec in (SLEEP, FRONTEND_SLEEP, FRONTEND_SLEEP_WITHOUT_SIDECAR, SLEEP_A, NGINX)}
)


def probe_client_spec(probe_namespace: str) -> WorkloadSpec:
    """The external world's own curl pod (``manifests/external/probe-client.yaml``), outside every mesh."""
    labels = dict(item.split("=", 1) for item in PROBE_SELECTOR.split(","))
    return WorkloadSpec(probe_namespace, "probe", PROBE_MANIFEST, PROBE_CONTAINER, "default", labels, in_mesh=False)


class WorkloadError(RuntimeError):
    pass


def namespace_manifest(mode: MeshMode) -> str:
    return f"workloads/namespace-{mode.value}.yaml"


def namespace_labels(mode: MeshMode, namespace: str) -> dict[str, str]:
    """The labels the harness puts on a client namespace in this mode."""
    (doc,) = manifests.render(namespace_manifest(mode), {"NAMESPACE": namespace})
    return dict(doc["metadata"].get("labels") or {})


def pod_has_sidecar(pod: Mapping[str, Any]) -> bool:
    """``istio-proxy`` as a container, or as a native sidecar (an init container that keeps running)."""
    spec = pod.get("spec") or {}
    if any(c.get("name") == SIDECAR_CONTAINER for c in spec.get("containers") or []):
        return True
    return any(
        c.get("name") == SIDECAR_CONTAINER and c.get("restartPolicy") == "Always"
        for c in spec.get("initContainers") or []
    )


def pod_redirected_by_ztunnel(pod: Mapping[str, Any]) -> bool:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return annotations.get(AMBIENT_REDIRECTION_ANNOTATION) == "enabled"


@dataclass
class WorkloadDeployer:
    """Deploys client workloads on first use in one data-plane mode and removes them at the end."""

    kube: Kube
    mode: MeshMode
    timeouts: Timeouts
    #: ``create(namespace) -> ObjectRef``: puts the run's ``sleep-secret`` into a client namespace.
    create_client_secret: Any
    _deployed: dict[str, Workload] = field(default_factory=dict)
    _namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    _created: list[ObjectRef] = field(default_factory=list)
    _changed: list[ObjectRef] = field(default_factory=list)

    def workload(self, spec: WorkloadSpec) -> Workload:
        if spec.ref not in self._deployed:
            with progress.step(f"deploying {spec.ref} ({self.mode.value} data plane)"):
                self._deployed[spec.ref] = self._deploy(spec)
        return self._deployed[spec.ref]

    def _track(self, applied: list[Any]) -> None:
        for item in applied:
            (self._created if item.created else self._changed).append(item.ref)

    def _prepare_namespace(self, namespace: str) -> dict[str, str]:
        if namespace not in self._namespaces:
            self._track(self.kube.apply(manifests.render(namespace_manifest(self.mode), {"NAMESPACE": namespace})))
            self._created.append(self.create_client_secret(namespace))
            self._namespaces[namespace] = namespace_labels(self.mode, namespace)
        return self._namespaces[namespace]

    def _deploy(self, spec: WorkloadSpec) -> Workload:
        labels = self._prepare_namespace(spec.namespace)
        self._track(self.kube.apply(manifests.render(spec.manifest, {"NAMESPACE": spec.namespace})))
        self.kube.wait_rollout("Deployment", spec.namespace, spec.name, self.timeouts.rollout)
        dataplane = spec.dataplane(self.mode)

        def ready_pod() -> dict[str, Any] | None:
            for info in self.kube.pods(spec.namespace, spec.selector):
                if info.ready and not info.terminating and info.ip:
                    return self.kube.get(ObjectRef("v1", "Pod", info.name, spec.namespace))
            return None

        def in_mesh_as_expected(pod: dict[str, Any] | None) -> bool:
            if pod is None:
                return False
            if dataplane is Dataplane.SIDECAR:
                return pod_has_sidecar(pod)
            if dataplane is Dataplane.AMBIENT:
                return pod_redirected_by_ztunnel(pod) and not pod_has_sidecar(pod)
            return not pod_has_sidecar(pod)

        pod = eventually(
            ready_pod,
            in_mesh_as_expected,
            timeouts=self.timeouts,
            deadline="rollout",
            consecutive=1,
            description=f"{spec.ref} running in the {dataplane.value} data plane",
            expected_description=_expected_membership(dataplane),
            tolerated=(KubeError,),
        )
        assert pod is not None
        return Workload(
            spec=spec,
            pod=str(pod["metadata"]["name"]),
            ip=str(pod["status"]["podIP"]),
            dataplane=dataplane,
            namespace_labels=labels,
        )

    def remove_all(self) -> None:
        """Delete what the deployments created (namespaces last) and release what they changed."""
        if self._created:
            with progress.step(f"removing the client workloads of the {self.mode.value} data plane"):
                self.kube.delete(self._created, self.timeouts.delete)
        if self._changed:
            self.kube.release(self._changed)
        self._created.clear()
        self._changed.clear()
        self._deployed.clear()
        self._namespaces.clear()


def _expected_membership(dataplane: Dataplane) -> str:
    if dataplane is Dataplane.SIDECAR:
        return f"a ready pod with the {SIDECAR_CONTAINER} sidecar injected"
    if dataplane is Dataplane.AMBIENT:
        return f"a ready pod without sidecar, annotated {AMBIENT_REDIRECTION_ANNOTATION}=enabled"
    return "a ready pod without sidecar"
