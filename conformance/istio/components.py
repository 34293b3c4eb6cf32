"""Istio's components as the harness names them, and the error every Istio module raises.

Names are those of upstream's default revision in ``istio-system`` (istio/istio manifests/charts): istiod,
the egress gateway of the demo profile, and the ambient node agents ztunnel and istio-cni.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from conformance.kube.api import ObjectRef

ISTIO_NAMESPACE = "istio-system"
ISTIO_NAMESPACE_REF = ObjectRef("v1", "Namespace", ISTIO_NAMESPACE)
ISTIOD = "istiod"
EGRESS_GATEWAY = "istio-egressgateway"
ZTUNNEL = "ztunnel"
ISTIO_CNI = "istio-cni-node"


class ObjectReader(Protocol):
    """The part of ``conformance.kube.api.Kube`` that reads one object."""

    def get(self, ref: ObjectRef) -> dict[str, Any] | None: ...


class IstioError(RuntimeError):
    """istioctl failed, Istio is not where it should be, or a download was refused; the message says which."""


class WorkloadKind(enum.StrEnum):
    DEPLOYMENT = "Deployment"
    DAEMON_SET = "DaemonSet"


@dataclass(frozen=True)
class Workload:
    """An Istio component whose rollout the install waits for."""

    kind: WorkloadKind
    name: str
    namespace: str = ISTIO_NAMESPACE

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef("apps/v1", self.kind.value, self.name, self.namespace)

    def __str__(self) -> str:
        return f"{self.kind.value} {self.namespace}/{self.name}"
