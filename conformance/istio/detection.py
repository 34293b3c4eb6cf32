"""What Istio a cluster already runs (``--istio existing``, and the refusal to install over it)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conformance.core import progress
from conformance.istio.components import (
    EGRESS_GATEWAY,
    ISTIO_CNI,
    ISTIO_NAMESPACE,
    ISTIOD,
    ZTUNNEL,
    IstioError,
    ObjectReader,
    Workload,
    WorkloadKind,
)
from conformance.settings.options import MeshMode

_IMAGE_VARIANT = re.compile(r"-(distroless|debug)$")
_ISTIO_TAG = re.compile(r"^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)$")


@dataclass(frozen=True)
class InstalledIstio:
    """What ``--istio existing`` found in the cluster."""

    version: str
    modes: frozenset[MeshMode]
    egress_gateway: bool


def version_from_image(image: str) -> str:
    """``1.30.3`` from ``docker.io/istio/pilot:1.30.3`` or ``...:1.30.3-distroless`` (a digest may follow)."""
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last:
        raise IstioError(f"the istiod image {image!r} has no tag, so its Istio version is unknown")
    tag = _IMAGE_VARIANT.sub("", last.rsplit(":", 1)[1])
    match = _ISTIO_TAG.match(tag)
    if match is None:
        raise IstioError(f"the istiod image tag of {image!r} is not an Istio version such as 1.30.3")
    return match.group(1)


def istiod_present(kube: ObjectReader) -> bool:
    """Whether an Istio control plane (default revision) runs in the cluster."""
    return kube.get(Workload(WorkloadKind.DEPLOYMENT, ISTIOD).ref) is not None


def detect_installed(kube: ObjectReader) -> InstalledIstio:
    """Version and data-plane modes of the Istio already in the cluster (default revision)."""
    istiod = kube.get(Workload(WorkloadKind.DEPLOYMENT, ISTIOD).ref)
    if istiod is None:
        raise IstioError(
            f"--istio existing: there is no Deployment {ISTIO_NAMESPACE}/{ISTIOD} in the cluster; "
            "install Istio first (default revision) or let the harness install it with --istio install"
        )
    version = version_from_image(_istiod_image(istiod))
    modes = {MeshMode.SIDECAR}  # istiod's injector serves sidecars in every profile
    ztunnel = _daemon_set_present(kube, ZTUNNEL)
    cni = _daemon_set_present(kube, ISTIO_CNI)
    if ztunnel and cni:
        modes.add(MeshMode.AMBIENT)
    elif ztunnel:
        progress.info(f"{ZTUNNEL} is installed but {ISTIO_CNI} is not: ambient traffic capture cannot work")
    egress = kube.get(Workload(WorkloadKind.DEPLOYMENT, EGRESS_GATEWAY).ref) is not None
    return InstalledIstio(version=version, modes=frozenset(modes), egress_gateway=egress)


def _istiod_image(deployment: Mapping[str, Any]) -> str:
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    chosen = next((c for c in containers if c.get("name") == "discovery"), containers[0] if containers else None)
    image = chosen.get("image") if isinstance(chosen, dict) else None
    if not isinstance(image, str) or not image:
        raise IstioError(f"Deployment {ISTIO_NAMESPACE}/{ISTIOD} names no container image")
    return image


def _daemon_set_present(kube: ObjectReader, name: str) -> bool:
    # GKE puts node agents in kube-system (operator/pkg/render/manifest.go clusterSpecificSettings).
    return any(
        kube.get(Workload(WorkloadKind.DAEMON_SET, name, namespace).ref) is not None
        for namespace in (ISTIO_NAMESPACE, "kube-system")
    )
