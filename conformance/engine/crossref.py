"""Offline cross-reference rules over one check's configuration, as its plan records it.

Strict schema validation accepts each object alone; these rules catch what only shows between objects — a
VirtualService naming a Gateway that is not there, a subset no visible DestinationRule defines, a
credentialName whose Secret is elsewhere — the mistakes istiod accepts silently and Envoy answers with a
404, a 503 or a route to nowhere. A check's actions are replayed in order (``apply`` adds or replaces,
``delete`` removes), and at every probe the configuration then in force is checked, looked at the way
istiod would from the proxies involved: the probing client's sidecar for the ``mesh`` hop, the egress
gateway for the gateway hop.

Rules (stable names; a check's catalogue record lists those its documented configuration breaks on
purpose, e.g. a pitfall the seed demonstrates):

- ``gateway-exists``: every Gateway a VirtualService names exists (``ns/name``, or a bare name in the
  VirtualService's namespace; ``mesh`` means the sidecars).
- ``gateway-route-visible``: a VirtualService bound to a Gateway is exported to the namespace the gateway
  proxies run in (istiod picks gateway routes by the proxy's namespace).
- ``subset-defined``: a route's subset is defined by the DestinationRule istiod picks for that client and
  host (client namespace first, then the host's namespace, then the root namespace, each as exported).
- ``credential-secret``: a ``credentialName`` Secret exists where the proxy reads it (the gateway's
  namespace, in ambient mode each waypoint's, or the DestinationRule's own for one with a workloadSelector),
  with the keys its TLS mode needs: a certificate and key to present (MUTUAL origination, a gateway server),
  a CA to verify with (SIMPLE or MUTUAL origination, a MUTUAL server), in the Secret or its ``-cacert`` twin.
- ``service-entry-resolution``: a ServiceEntry a gateway routes to resolves by DNS or is STATIC. A gateway
  never gets a passthrough (ORIGINAL_DST) cluster: for a NONE entry istiod falls back to EDS
  (``convertResolution`` in ``pilot/pkg/networking/core/cluster.go``), and without endpoints that cluster is
  empty, so the gateway answers 503 ``no healthy upstream`` itself.
- ``authorization-selector``: an AuthorizationPolicy's selector matches the egress gateway as installed
  (plan ``egressGateway.podLabels``) or, outside the gateway's namespace, a workload of the check.
- ``gateway-selector``: an Istio Gateway's selector matches the egress gateway's pod labels.
- ``authorization-source``: the ``principals`` and ``namespaces`` an AuthorizationPolicy's rules name are those
  of a workload of the check (a principal is ``<trust domain>/ns/<namespace>/sa/<service account>``; ``*``
  wildcards as Istio matches them): a source that matches nothing makes a DENY deny nothing.
- ``authorization-target``: every ``targetRef`` of an AuthorizationPolicy names an object the check applies
  (or the installed egress gateway's Service) in the policy's namespace.
- ``waypoint-binding``: in ambient mode a ServiceEntry's ``istio.io/use-waypoint`` (its own label, else its
  namespace's) names a waypoint that exists, and a ServiceEntry beside a waypoint is bound to one: unbound,
  ztunnel carries its traffic straight out and the waypoint's policies never apply.
- ``destination-rule-port``: a DestinationRule's ``portLevelSettings`` name ports the host's ServiceEntry
  declares (a setting for another port applies to no traffic).
- ``origination-sni``: the SNI a DestinationRule originates TLS with names its host (or a host of the host's
  ServiceEntry): the origin presents a certificate for its own name, and a mistyped SNI fails the handshake
  or reaches another virtual host.
- ``network-policy-port``: a NetworkPolicy's egress ports towards pods the harness knows (the egress gateway,
  istiod, the cluster DNS, a waypoint) are ports those pods listen on: a rule opening another port lets
  nothing through.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from conformance.engine.istio_config import (
    CLUSTER_DOMAIN,
    DEFAULT_ROOT_NAMESPACE,
    GATEWAY_API,
    ISTIO_NETWORKING,
    ISTIO_SECURITY,
    MESH_GATEWAY,
    RESOLVING,
    WAYPOINT_CLASS,
    Configuration,
    Document,
    all_gateway_references,
    destination_rules_for,
    dr_host,
    exported_to,
    host_matches,
    name_of,
    namespace_of,
    ref_of,
    route_destinations,
    service_entries_for,
    spec_of,
)
from conformance.spec.catalogue import CATALOGUE


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
class Finding:
    rule: Rule
    check: str
    #: The probe at which the configuration broke the rule first.
    probe: str
    message: str

    def __str__(self) -> str:
        return f"{self.check} at {self.probe}: [{self.rule.value}] {self.message}"


# ------------------------------------------------------------------------------------------ the rules


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


def _selects(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _gateway_exists(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for vs in config.of_kind(ISTIO_NETWORKING, "VirtualService"):
        for reference in sorted(all_gateway_references(vs) - {MESH_GATEWAY}):
            namespace, _, name = reference.partition("/")
            if not config.has(ISTIO_NETWORKING, "Gateway", namespace, name):
                yield f"{ref_of(vs)} names Gateway {reference}, which does not exist"


def _gateway_route_visible(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for vs in config.of_kind(ISTIO_NETWORKING, "VirtualService"):
        bound = all_gateway_references(vs) - {MESH_GATEWAY}
        if bound and not exported_to(vs, context.gateway_namespace):
            yield (
                f"{ref_of(vs)} is bound to {', '.join(sorted(bound))} but not exported to "
                f"{context.gateway_namespace}, where the gateway proxies run"
            )


def _subset_defined(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    viewers: list[tuple[str, str, bool]] = [(context.gateway_namespace, "the egress gateway", False)]
    if client is not None and client.get("dataplane") == "sidecar":
        viewers.append((str(client["namespace"]), f"the sidecar of {client['ref']}", True))
    for namespace, who, mesh in viewers:
        for vs in config.of_kind(ISTIO_NETWORKING, "VirtualService"):
            if not exported_to(vs, namespace):
                continue
            for route in route_destinations(vs):
                applies = MESH_GATEWAY in route.gateways if mesh else bool(route.gateways - {MESH_GATEWAY})
                if not applies or not route.subset:
                    continue
                rules = destination_rules_for(config, namespace, route.host, context.root_namespace)
                subsets = {str(s.get("name")) for dr in rules for s in spec_of(dr).get("subsets") or []}
                if route.subset not in subsets:
                    found = ", ".join(ref_of(dr) for dr in rules) or "none"
                    yield (
                        f"{ref_of(vs)} routes {who} to subset {route.subset} of {route.host}; the "
                        f"DestinationRules istiod picks there ({found}) do not define it"
                    )


def _tls_settings(dr: Document) -> Iterator[Mapping[str, Any]]:
    policies = [spec_of(dr).get("trafficPolicy") or {}]
    policies += [s.get("trafficPolicy") or {} for s in spec_of(dr).get("subsets") or []]
    for policy in policies:
        yield policy.get("tls") or {}
        for port_policy in policy.get("portLevelSettings") or []:
            yield port_policy.get("tls") or {}


#: What a credentialName Secret must hold, by what the proxy does with it.
_PRESENTS: tuple[str, ...] = ("tls.crt", "tls.key")
_VERIFIES = "ca.crt"


def _credential_secret(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    # (owner, credentialName, namespace read from, keys needed, whether a CA is needed)
    wanted: list[tuple[Document, str, str, tuple[str, ...], bool]] = []
    # In ambient mode the waypoints originate TLS, each reading Secrets in its own namespace.
    waypoints = sorted(
        {
            namespace_of(g)
            for g in config.of_kind(GATEWAY_API, "Gateway")
            if spec_of(g).get("gatewayClassName") == WAYPOINT_CLASS
        }
    )
    for dr in config.of_kind(ISTIO_NETWORKING, "DestinationRule"):
        if spec_of(dr).get("workloadSelector"):
            readers = [namespace_of(dr)]
        elif context.mode == "ambient":
            readers = waypoints
        else:
            readers = [context.gateway_namespace]
        for tls in _tls_settings(dr):
            if not tls.get("credentialName"):
                continue
            mutual = str(tls.get("mode") or "") == "MUTUAL"
            keys: tuple[str, ...] = _PRESENTS if mutual else ()
            wanted += [(dr, str(tls["credentialName"]), namespace, keys, True) for namespace in readers]
    for gateway in config.of_kind(ISTIO_NETWORKING, "Gateway"):
        for server in spec_of(gateway).get("servers") or []:
            tls = server.get("tls") or {}
            if tls.get("credentialName"):
                mutual = str(tls.get("mode") or "") == "MUTUAL"
                wanted.append((gateway, str(tls["credentialName"]), context.gateway_namespace, _PRESENTS, mutual))
    for owner, name, namespace, keys, needs_ca in wanted:
        secret = name.removeprefix("kubernetes://")
        if "://" in secret:
            continue  # another credential source (e.g. a ConfigMap), not a Secret
        found = config.get("", "Secret", namespace, secret)
        if found is None:
            yield f"{ref_of(owner)} uses credentialName {name}; no Secret {namespace}/{secret} is created"
            continue
        held = set(found.get("data") or {}) | set(found.get("stringData") or {})
        missing = [key for key in keys if key not in held]
        twin = config.get("", "Secret", namespace, f"{secret}-cacert")
        if needs_ca and _VERIFIES not in held and (twin is None or _VERIFIES not in set(twin.get("data") or {})):
            missing.append(_VERIFIES)
        if missing:
            holds = ", ".join(sorted(held)) or "nothing"
            yield (
                f"{ref_of(owner)} uses credentialName {name}; Secret {namespace}/{secret} lacks "
                f"{', '.join(missing)}, which its TLS mode needs (it holds {holds})"
            )


def _service_entry_resolution(
    config: Configuration, context: Context, client: Mapping[str, Any] | None
) -> Iterator[str]:
    for vs in config.of_kind(ISTIO_NETWORKING, "VirtualService"):
        if not exported_to(vs, context.gateway_namespace):
            continue
        for route in route_destinations(vs):
            if not route.gateways - {MESH_GATEWAY}:
                continue
            for se in service_entries_for(config, route.host, context.gateway_namespace):
                resolution = str(spec_of(se).get("resolution") or "NONE")
                if resolution not in RESOLVING:
                    yield (
                        f"{ref_of(vs)} sends the gateway to {route.host}, whose {ref_of(se)} has resolution "
                        f"{resolution}: a gateway's cluster for it is EDS, empty unless the entry lists endpoints "
                        "(503 no healthy upstream)"
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
        if not any(_selects(selector, labels) for labels in candidates):
            yield (
                f"{ref_of(policy)} selects {dict(selector)}, which matches neither the egress gateway "
                f"({dict(context.gateway_labels)}) nor a workload of the check"
            )


def _gateway_selector(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for gateway in config.of_kind(ISTIO_NETWORKING, "Gateway"):
        selector = spec_of(gateway).get("selector") or {}
        if not _selects(selector, context.gateway_labels):
            yield (
                f"{ref_of(gateway)} selects {dict(selector)}; the egress gateway's pods carry "
                f"{dict(context.gateway_labels)}"
                if context.gateway_labels
                else f"{ref_of(gateway)} selects {dict(selector)}, but no egress gateway with ready pods was found "
                f"(Service {context.gateway_namespace}/istio-egressgateway)"
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


def _destination_rule_port(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for dr in config.of_kind(ISTIO_NETWORKING, "DestinationRule"):
        host = dr_host(dr)
        entries = service_entries_for(config, host, namespace_of(dr))
        if not entries:
            continue  # a Kubernetes Service, or a host the check does not define: its ports are unknown here
        declared = {int(p["number"]) for se in entries for p in spec_of(se).get("ports") or [] if "number" in p}
        policies = [spec_of(dr).get("trafficPolicy") or {}]
        policies += [subset.get("trafficPolicy") or {} for subset in spec_of(dr).get("subsets") or []]
        for policy in policies:
            for setting in policy.get("portLevelSettings") or []:
                number = (setting.get("port") or {}).get("number")
                if number is not None and int(number) not in declared:
                    yield (
                        f"{ref_of(dr)} sets port {number} of {host}, which its ServiceEntry does not declare "
                        f"(ports {', '.join(str(p) for p in sorted(declared))})"
                    )


def _origination_sni(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for dr in config.of_kind(ISTIO_NETWORKING, "DestinationRule"):
        host = dr_host(dr)
        names = {host} | {
            str(h) for se in service_entries_for(config, host, namespace_of(dr)) for h in spec_of(se).get("hosts") or []
        }
        for tls in _tls_settings(dr):
            sni = tls.get("sni")
            if str(tls.get("mode") or "") == "ISTIO_MUTUAL":
                continue  # mesh mTLS to a gateway: its SNI picks the gateway's server, not the host's certificate
            if sni and not any(host_matches(name, str(sni)) or host_matches(str(sni), name) for name in names):
                known = ", ".join(sorted(names))
                yield f"{ref_of(dr)} originates TLS to {host} with SNI {sni}, which names none of {known}"


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
                    if pod_namespace == namespace and _selects(selector, labels):
                        wrong = [port for port in ports if port not in listening]
                        if wrong:
                            yield (
                                f"{ref_of(policy)} opens port {', '.join(map(str, wrong))} to {what}, which listens "
                                f"on {', '.join(str(p) for p in sorted(listening))}"
                            )


RULES = {
    Rule.GATEWAY_EXISTS: _gateway_exists,
    Rule.GATEWAY_ROUTE_VISIBLE: _gateway_route_visible,
    Rule.SUBSET_DEFINED: _subset_defined,
    Rule.CREDENTIAL_SECRET: _credential_secret,
    Rule.SERVICE_ENTRY_RESOLUTION: _service_entry_resolution,
    Rule.AUTHORIZATION_SELECTOR: _authorization_selector,
    Rule.GATEWAY_SELECTOR: _gateway_selector,
    Rule.AUTHORIZATION_SOURCE: _authorization_source,
    Rule.AUTHORIZATION_TARGET: _authorization_target,
    Rule.WAYPOINT_BINDING: _waypoint_binding,
    Rule.DESTINATION_RULE_PORT: _destination_rule_port,
    Rule.NETWORK_POLICY_PORT: _network_policy_port,
    Rule.ORIGINATION_SNI: _origination_sni,
}


# ------------------------------------------------------------------------------------------ entry points


def check_findings(plan: Mapping[str, Any], check: Mapping[str, Any]) -> list[Finding]:
    """Every rule broken by the configuration in force at one of the check's probes, each reported once
    (at the first probe that sees it)."""
    context = Context.of(plan, check)
    config = Configuration()
    findings: dict[tuple[Rule, str], Finding] = {}
    for action in check.get("actions") or []:
        kind = action.get("type")
        if kind == "apply":
            config.apply(action.get("resources") or [])
        elif kind == "delete":
            config.delete(action.get("resources") or [])
        elif kind == "probe":
            client = context.workloads.get(str(action.get("client")))
            for rule, evaluate in RULES.items():
                for message in evaluate(config, context, client):
                    findings.setdefault((rule, message), Finding(rule, str(check["id"]), str(action["probe"]), message))
    return list(findings.values())


def configuration_problems(
    config: Configuration, context: Context, declared: Mapping[Rule, str] | None = None
) -> list[str]:
    """What the configuration ``config`` breaks, from every viewpoint of the check (the egress gateway and
    each client's sidecar), except the rules in ``declared``: run over a step's whole configuration before
    it is applied, in a plan and on a cluster alike."""
    skipped = declared or {}
    problems: dict[str, None] = {}
    clients: list[Mapping[str, Any] | None] = [None, *context.workloads.values()]
    for rule, evaluate in RULES.items():
        if rule in skipped:
            continue
        for client in clients:
            for message in evaluate(config, context, client):
                problems.setdefault(f"[{rule.value}] {message}", None)
    return list(problems)


def declared_breaks(check_id: str) -> dict[Rule, str]:
    """The rules a check's catalogue record says its documented configuration breaks on purpose."""
    record = CATALOGUE.get(check_id)
    return {Rule(rule): why for rule, why in (record.breaks_rules if record else ())}


def plan_problems(plan: Mapping[str, Any]) -> list[str]:
    """Findings no check declares, and declarations no finding bears out (a stale exemption hides the
    next real mistake): empty when the plan's configurations are consistent."""
    problems: list[str] = []
    for check in plan.get("checks") or []:
        findings = check_findings(plan, check)
        declared = declared_breaks(str(check["id"]))
        problems += [str(f) for f in findings if f.rule not in declared]
        broken = {f.rule for f in findings}
        problems += [
            f"{check['id']} declares it breaks {rule.value} ({why}), but its plan does not"
            for rule, why in declared.items()
            if rule not in broken
        ]
    return problems
