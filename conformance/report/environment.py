"""What the run ran on, as observed: Kubernetes, nodes, CNI, Istio and the images actually running.

Facts are read from the live cluster, never taken from lists of what should be there: image digests come
from the ``imageID`` in pod status (what the kubelet runs), the CNI from the node agents' DaemonSets, the
Kubernetes version from the API server. Whatever cannot be read is recorded with its reason. A plan run
observes nothing and says so.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.core.processes import run_bounded
from conformance.core.timeouts import PROBE_SECONDS
from conformance.istio.components import ISTIO_CNI
from conformance.world.workloads import SIDECAR_CONTAINER

#: Node agents that identify a CNI plugin: DaemonSet name -> plugin.
CNI_DAEMONSETS: Mapping[str, str] = {
    "kindnet": "kindnet",
    "calico-node": "calico",
    "canal": "canal",
    "cilium": "cilium",
    "kube-flannel-ds": "flannel",
    "weave-net": "weave",
    "antrea-agent": "antrea",
    "aws-node": "aws-vpc-cni",
    "azure-cns": "azure-cni",
    "ovnkube-node": "ovn-kubernetes",
    "kube-router": "kube-router",
    "kube-network-policies": "kube-network-policies",
}
#: Istio's own CNI node agent (ambient mode; optional in sidecar mode).
ISTIO_CNI_DAEMONSET = ISTIO_CNI
GIT_SECONDS = 10.0
#: Istio's proxy image keeps Envoy here (istio/istio pilot/docker/Dockerfile.proxyv2).
ENVOY_VERSION_COMMAND = ("/usr/local/bin/envoy", "--version")


@dataclass
class RunningImage:
    """One image as the kubelet reports it: the reference asked for and the image ID it runs."""

    image: str
    image_id: str
    namespaces: set[str] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)

    @property
    def digest(self) -> str | None:
        if "@sha256:" in self.image_id:
            return "sha256:" + self.image_id.rsplit("@sha256:", 1)[1]
        if self.image_id.startswith("sha256:"):
            return self.image_id
        return None

    def record(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "imageID": self.image_id,
            "digest": self.digest,
            "namespaces": sorted(self.namespaces),
            "containers": sorted(self.containers),
        }


def running_images(pods: Iterable[Mapping[str, Any]]) -> list[RunningImage]:
    """Every (image, imageID) pair in the pods' container statuses, init and sidecar containers included."""
    found: dict[tuple[str, str], RunningImage] = {}
    for pod in pods:
        namespace = str((pod.get("metadata") or {}).get("namespace") or "")
        status = pod.get("status") or {}
        for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
            for container in status.get(key) or []:
                image = str(container.get("image") or "")
                image_id = str(container.get("imageID") or "")
                if not image_id:
                    continue  # not pulled or not started yet: nothing is known to run
                entry = found.setdefault((image, image_id), RunningImage(image, image_id))
                entry.namespaces.add(namespace)
                entry.containers.add(str(container.get("name") or ""))
    return sorted(found.values(), key=lambda i: (i.image, i.image_id))


def detect_cni(daemonsets: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The CNI plugins whose node agents run, and whether Istio's CNI agent runs."""
    plugins: set[str] = set()
    istio_cni = False
    for daemonset in daemonsets:
        name = str((daemonset.get("metadata") or {}).get("name") or "")
        if name == ISTIO_CNI_DAEMONSET:
            istio_cni = True
        elif name in CNI_DAEMONSETS:
            plugins.add(CNI_DAEMONSETS[name])
    return {"plugins": sorted(plugins), "istioCni": istio_cni}


def node_facts(nodes: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    facts = []
    for node in nodes:
        info = (node.get("status") or {}).get("nodeInfo") or {}
        facts.append(
            {
                "name": str((node.get("metadata") or {}).get("name") or ""),
                "kubeletVersion": info.get("kubeletVersion"),
                "osImage": info.get("osImage"),
                "containerRuntimeVersion": info.get("containerRuntimeVersion"),
                "architecture": info.get("architecture"),
            }
        )
    return sorted(facts, key=lambda f: f["name"])


@dataclass
class DataPlaneFacts:
    """What ran while one data-plane mode's checks ran."""

    mode: str
    cni: dict[str, Any] | None = None
    images: list[RunningImage] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    #: "<namespace>/<pod>" of a proxy the mode's checks route through -> what its Envoy says it is.
    proxy_builds: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "cni": self.cni,
            "namespaces": self.namespaces,
            "images": [i.record() for i in self.images],
            "proxyBuilds": dict(sorted(self.proxy_builds.items())),
        }


@dataclass
class RunEnvironment:
    """The environment section of the conformance report, filled in as the run learns it."""

    kubernetes_version: str | None = None
    nodes: list[dict[str, Any]] = field(default_factory=list)
    kind_version: str | None = None
    istio_version: str | None = None
    install_method: dict[str, str] = field(default_factory=dict)
    istioctl_version: str | None = None
    data_planes: dict[str, DataPlaneFacts] = field(default_factory=dict)
    #: Images --load-images loaded into the kind node.
    images_loaded: list[str] = field(default_factory=list)
    #: What could not be observed, and why.
    errors: list[str] = field(default_factory=list)

    def observe_data_plane(
        self, kube: Any, mode: str, namespaces: Iterable[str], proxies: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Running images in ``namespaces``, the CNI, and the builds of the ``proxies`` (namespace, label
        selector) the mode's traffic crosses, read while ``mode``'s Istio is installed."""
        facts = DataPlaneFacts(mode, namespaces=sorted(set(namespaces)))
        pods: list[dict[str, Any]] = []
        for namespace in facts.namespaces:
            try:
                pods += kube.list_objects("v1", "Pod", namespace)
            except Exception as exc:
                self.errors.append(f"{mode}: pods of {namespace}: {exc}")
        facts.images = running_images(pods)
        try:
            facts.cni = detect_cni(kube.list_objects("apps/v1", "DaemonSet"))
        except Exception as exc:
            self.errors.append(f"{mode}: DaemonSets (CNI): {exc}")
        for namespace, selector in proxies:
            self._observe_proxy_builds(kube, facts, namespace, selector)
        self.data_planes[mode] = facts

    def _observe_proxy_builds(self, kube: Any, facts: DataPlaneFacts, namespace: str, selector: str) -> None:
        """``envoy --version`` in each ready pod: upstream Envoy and Istio's proxy print different builds."""
        try:
            pods = [pod for pod in kube.pods(namespace, selector) if pod.ready]
        except Exception as exc:
            self.errors.append(f"{facts.mode}: pods {namespace}/{selector}: {exc}")
            return
        for pod in pods:
            try:
                result = kube.exec(namespace, pod.name, list(ENVOY_VERSION_COMMAND), SIDECAR_CONTAINER, PROBE_SECONDS)
            except Exception as exc:
                self.errors.append(f"{facts.mode}: envoy --version in {namespace}/{pod.name}: {exc}")
                continue
            build = (result.stdout or result.stderr).strip().rpartition("version:")[2].strip()
            facts.proxy_builds[f"{namespace}/{pod.name}"] = build or "(no version printed)"

    def observe_cluster(self, kube: Any) -> None:
        try:
            self.kubernetes_version = kube.server_version()
        except Exception as exc:
            self.errors.append(f"Kubernetes version: {exc}")
        try:
            self.nodes = node_facts(kube.list_objects("v1", "Node"))
        except Exception as exc:
            self.errors.append(f"nodes: {exc}")


def git_commit(root: Path) -> tuple[str | None, bool | None]:
    """The checkout's commit and whether its tracked files differ from it; (None, None) outside git."""
    try:
        head = run_bounded(["git", "-C", str(root), "rev-parse", "HEAD"], GIT_SECONDS)
        if head.returncode != 0:
            return None, None
        status = run_bounded(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], GIT_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    commit = head.stdout.strip() or None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return commit, dirty
