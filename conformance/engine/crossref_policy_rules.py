"""Cross-reference rules on who may send what: AuthorizationPolicy selectors, sources and targets, waypoint
bindings in ambient mode, NetworkPolicy ports."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from conformance.engine.crossref_context import Context, Rule, selects
from conformance.engine.istio_config import (
    CLUSTER_DOMAIN,
    DEFAULT_ROOT_NAMESPACE,
    GATEWAY_API,
    ISTIO_NETWORKING,
    ISTIO_SECURITY,
    WAYPOINT_CLASS,
    Configuration,
    name_of,
    namespace_of,
    ref_of,
    spec_of,
)


def _authorization_selector(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for policy in config.of_kind(ISTIO_SECURITY, "AuthorizationPolicy"):
        selector = (spec_of(policy).get("selector") or {}).get("matchLabels")
        if not selector:
            continue  # namespace-wide, or attached by targetRefs
        namespace = namespace_of(policy)
        anywhere = namespace == context.root_namespace
        candidates: list[Mapping[str, Any]] = []
        if anywhere or namespace == context.gateway_namespace:
            candidates.append(context.gateway_labels)
        candidates += [
            w.get("labels") or {} for w in context.workloads.values() if anywhere or w.get("namespace") == namespace
        ]
        if not any(selects(selector, labels) for labels in candidates):
            yield (
                f"{ref_of(policy)} selects {dict(selector)}, which matches neither the egress gateway "
                f"({dict(context.gateway_labels)}) nor a workload of the check"
            )


#: Pods outside the check the harness knows the ports of: (namespace, labels, ports). The egress gateway's
#: and the waypoints' come from the context and the configuration.
_PLATFORM_PODS: tuple[tuple[str, Mapping[str, str], frozenset[int]], ...] = (
    (DEFAULT_ROOT_NAMESPACE, {"app": "istiod"}, frozenset({8080, 15010, 15012, 15014, 15017})),
    ("kube-system", {"k8s-app": "kube-dns"}, frozenset({53, 9153})),
)
#: Ports of a waypoint's pods (HBONE, readiness, metrics).
_WAYPOINT_PORTS = frozenset({15008, 15021, 15090})
USE_WAYPOINT = "istio.io/use-waypoint"
USE_WAYPOINT_NAMESPACE = "istio.io/use-waypoint-namespace"


def _principal_matches(pattern: str, workload: Mapping[str, Any]) -> bool:
    identity = f"ns/{workload.get('namespace')}/sa/{workload.get('serviceAccount')}"
    # A principal is "<trust domain>/ns/<ns>/sa/<sa>"; Istio matches "*", "prefix*" and "*suffix".
    candidates = [identity, f"{CLUSTER_DOMAIN}/{identity}"]
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return any(c.endswith(pattern[1:]) for c in candidates)
    if pattern.endswith("*"):
        return any(c.startswith(pattern[:-1]) for c in candidates)
    return pattern in candidates


def _namespace_matches(pattern: str, namespace: str) -> bool:
    if pattern.startswith("*"):
        return namespace.endswith(pattern[1:])
    if pattern.endswith("*"):
        return namespace.startswith(pattern[:-1])
    return pattern == namespace


def _authorization_source(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    workloads = list(context.workloads.values())
    namespaces = {str(w.get("namespace")) for w in workloads}
    for policy in config.of_kind(ISTIO_SECURITY, "AuthorizationPolicy"):
        for rule in spec_of(policy).get("rules") or []:
            for peer in rule.get("from") or []:
                source = peer.get("source") or {}
                for principal in source.get("principals") or []:
                    if not any(_principal_matches(str(principal), w) for w in workloads):
                        known = ", ".join(f"ns/{w.get('namespace')}/sa/{w.get('serviceAccount')}" for w in workloads)
                        yield (
                            f"{ref_of(policy)} names principal {principal}, which is no workload of the check "
                            f"({known or 'none'})"
                        )
                for namespace in source.get("namespaces") or []:
                    if not any(_namespace_matches(str(namespace), n) for n in namespaces):
                        yield (
                            f"{ref_of(policy)} names source namespace {namespace}, where no workload of the "
                            f"check runs ({', '.join(sorted(namespaces)) or 'none'})"
                        )


def _authorization_target(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for policy in config.of_kind(ISTIO_SECURITY, "AuthorizationPolicy"):
        namespace = namespace_of(policy)
        references = list(spec_of(policy).get("targetRefs") or [])
        if spec_of(policy).get("targetRef"):
            references.append(spec_of(policy)["targetRef"])
        for reference in references:
            group, kind, name = (
                str(reference.get("group") or ""),
                str(reference.get("kind")),
                str(reference.get("name")),
            )
            installed = kind == "Service" and namespace == context.gateway_namespace and name == context.gateway_name
            if not installed and not config.has(group, kind, namespace, name):
                yield f"{ref_of(policy)} targets {kind} {namespace}/{name}, which the check does not create"


def _waypoint_binding(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    if context.mode != "ambient":
        return
    waypoints = {
        (namespace_of(g), name_of(g))
        for g in config.of_kind(GATEWAY_API, "Gateway")
        if spec_of(g).get("gatewayClassName") == WAYPOINT_CLASS
    }
    for entry in config.of_kind(ISTIO_NETWORKING, "ServiceEntry"):
        namespace = namespace_of(entry)
        labels = (entry.get("metadata") or {}).get("labels") or {}
        namespace_doc = config.get("", "Namespace", "", namespace) or {}
        namespace_labels = (namespace_doc.get("metadata") or {}).get("labels") or {}
        bound = labels.get(USE_WAYPOINT) or namespace_labels.get(USE_WAYPOINT)
        if bound and bound != "none":
            where = labels.get(USE_WAYPOINT_NAMESPACE) or namespace_labels.get(USE_WAYPOINT_NAMESPACE) or namespace
            if (where, bound) not in waypoints:
                yield f"{ref_of(entry)} is bound to waypoint {where}/{bound} ({USE_WAYPOINT}), which does not exist"
        elif not bound and any(ns == namespace for ns, _ in waypoints):
            present = ", ".join(f"{ns}/{name}" for ns, name in sorted(waypoints) if ns == namespace)
            yield (
                f"{ref_of(entry)} is bound to no waypoint (no {USE_WAYPOINT} label on it or on namespace "
                f"{namespace}), although {present} is there: its traffic would bypass the waypoint"
            )


def _known_pods(config: Configuration, context: Context) -> list[tuple[str, Mapping[str, str], frozenset[int], str]]:
    pods = [(ns, labels, ports, f"{ns} pods {dict(labels)}") for ns, labels, ports in _PLATFORM_PODS]
    if context.gateway_labels:
        pods.append(
            (context.gateway_namespace, context.gateway_labels, context.gateway_pod_ports, "the egress gateway")
        )
    for gateway in config.of_kind(GATEWAY_API, "Gateway"):
        if spec_of(gateway).get("gatewayClassName") == WAYPOINT_CLASS:
            labels = {"gateway.networking.k8s.io/gateway-name": name_of(gateway)}
            pods.append(
                (namespace_of(gateway), labels, _WAYPOINT_PORTS, f"waypoint {namespace_of(gateway)}/{name_of(gateway)}")
            )
    return pods


def _network_policy_port(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    pods = _known_pods(config, context)
    for policy in config.of_kind("networking.k8s.io", "NetworkPolicy"):
        for rule in spec_of(policy).get("egress") or []:
            ports = [p.get("port") for p in rule.get("ports") or [] if isinstance(p.get("port"), int)]
            for peer in rule.get("to") or []:
                namespace_selector = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
                namespace = namespace_selector.get("kubernetes.io/metadata.name", namespace_of(policy))
                selector = (peer.get("podSelector") or {}).get("matchLabels")
                if selector is None or (peer.get("namespaceSelector") and not namespace_selector):
                    continue  # every pod, or namespaces by other labels: no ports to compare
                for pod_namespace, labels, listening, what in pods:
                    if pod_namespace == namespace and selects(selector, labels):
                        wrong = [port for port in ports if port not in listening]
                        if wrong:
                            yield (
                                f"{ref_of(policy)} opens port {', '.join(map(str, wrong))} to {what}, which listens "
                                f"on {', '.join(str(p) for p in sorted(listening))}"
                            )


POLICY_RULES = {
    Rule.AUTHORIZATION_SELECTOR: _authorization_selector,
    Rule.AUTHORIZATION_SOURCE: _authorization_source,
    Rule.AUTHORIZATION_TARGET: _authorization_target,
    Rule.WAYPOINT_BINDING: _waypoint_binding,
    Rule.NETWORK_POLICY_PORT: _network_policy_port,
}
