"""What the cross-reference rules are called and what they know besides the configuration: the installed
egress gateway, the root namespace and the check's workloads."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from conformance.engine.istio_config import DEFAULT_ROOT_NAMESPACE


class Rule(enum.StrEnum):
    GATEWAY_EXISTS = "gateway-exists"
    GATEWAY_ROUTE_VISIBLE = "gateway-route-visible"
    SUBSET_DEFINED = "subset-defined"
    CREDENTIAL_SECRET = "credential-secret"
    SERVICE_ENTRY_RESOLUTION = "service-entry-resolution"
    AUTHORIZATION_SELECTOR = "authorization-selector"
    GATEWAY_SELECTOR = "gateway-selector"
    AUTHORIZATION_SOURCE = "authorization-source"
    AUTHORIZATION_TARGET = "authorization-target"
    WAYPOINT_BINDING = "waypoint-binding"
    DESTINATION_RULE_PORT = "destination-rule-port"
    NETWORK_POLICY_PORT = "network-policy-port"
    ORIGINATION_SNI = "origination-sni"


@dataclass(frozen=True)
class Context:
    """What the rules know besides the configuration: the installed gateway, the root namespace, and the
    workloads of the check."""

    gateway_namespace: str
    gateway_labels: Mapping[str, str]
    root_namespace: str
    workloads: Mapping[str, Mapping[str, Any]]
    #: The check's data-plane mode: in ambient mode a waypoint, not the egress gateway, originates TLS.
    mode: str = "sidecar"
    #: The egress gateway's Service name and the ports its pods listen on (the Service's target ports).
    gateway_name: str = ""
    gateway_pod_ports: frozenset[int] = frozenset()

    @classmethod
    def of_run(cls, gateway: Mapping[str, Any] | None, workloads: Iterable[Mapping[str, Any]], mode: str) -> Context:
        """The context of a check as it runs: the egress gateway as installed (none in ambient mode) and the
        workloads it uses so far."""
        namespace = str(gateway["namespace"]) if gateway else DEFAULT_ROOT_NAMESPACE
        labels = dict(gateway["podLabels"]) if gateway else {}
        by_ref = {str(w["ref"]): w for w in workloads}
        return cls(namespace, labels, DEFAULT_ROOT_NAMESPACE, by_ref, mode, *_gateway_service(gateway))

    @classmethod
    def of(cls, plan: Mapping[str, Any], check: Mapping[str, Any]) -> Context:
        gateway = plan["egressGateway"]
        root = str((plan.get("meshConfig") or {}).get("rootNamespace") or DEFAULT_ROOT_NAMESPACE)
        workloads = {str(w["ref"]): w for w in check.get("workloads") or []}
        return cls(
            str(gateway["namespace"]),
            dict(gateway["podLabels"]),
            root,
            workloads,
            str(check["mode"]),
            *_gateway_service(gateway),
        )


def _gateway_service(gateway: Mapping[str, Any] | None) -> tuple[str, frozenset[int]]:
    if not gateway:
        return "", frozenset()
    ports = frozenset(int(p.get("targetPort") or p["port"]) for p in gateway.get("ports") or [])
    return str(gateway.get("name") or ""), ports


def selects(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
