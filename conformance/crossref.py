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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.catalogue import CATALOGUE

Document = Mapping[str, Any]

MESH_GATEWAY = "mesh"
DEFAULT_ROOT_NAMESPACE = "istio-system"
CLUSTER_DOMAIN = "cluster.local"
#: Resolutions that give the gateway an address of the host's own instead of the connection's destination.
RESOLVING = frozenset({"DNS", "DNS_ROUND_ROBIN", "STATIC"})
ISTIO_NETWORKING = "networking.istio.io"
GATEWAY_API = "gateway.networking.k8s.io"
#: The GatewayClass of Istio's waypoints (ambient mode).
WAYPOINT_CLASS = "istio-waypoint"
ISTIO_SECURITY = "security.istio.io"


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


# ------------------------------------------------------------------------------------------ configuration


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def _key(api_version: str, kind: str, namespace: str | None, name: str) -> tuple[str, str, str, str]:
    return _group(api_version), kind, namespace or "", name


def _namespace(doc: Document) -> str:
    return str((doc.get("metadata") or {}).get("namespace") or "")


def _name(doc: Document) -> str:
    return str((doc.get("metadata") or {}).get("name") or "")


def _ref(doc: Document) -> str:
    return f"{doc.get('kind')} {_namespace(doc)}/{_name(doc)}"


def _spec(doc: Document) -> Mapping[str, Any]:
    return doc.get("spec") or {}


class Configuration:
    """The objects in force at one point of a check: what its applies left, minus what it deleted."""

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str, str, str], Document] = {}

    def apply(self, docs: Iterable[Document]) -> None:
        for doc in docs:
            self._objects[_key(str(doc["apiVersion"]), str(doc["kind"]), _namespace(doc), _name(doc))] = doc

    def delete(self, refs: Iterable[Mapping[str, Any]]) -> None:
        for ref in refs:
            key = _key(str(ref["apiVersion"]), str(ref["kind"]), ref.get("namespace"), str(ref["name"]))
            self._objects.pop(key, None)

    def copy(self) -> Configuration:
        copied = Configuration()
        copied._objects = dict(self._objects)
        return copied

    def of_kind(self, group: str, kind: str) -> list[Document]:
        return [doc for (g, k, _, _), doc in self._objects.items() if g == group and k == kind]

    def has(self, group: str, kind: str, namespace: str, name: str) -> bool:
        return (group, kind, namespace, name) in self._objects

    def get(self, group: str, kind: str, namespace: str, name: str) -> Document | None:
        return self._objects.get((group, kind, namespace, name))


# ------------------------------------------------------------------------------------- istiod's lookups


def fqdn(host: str, namespace: str, domain: str = CLUSTER_DOMAIN) -> str:
    """A short host name as istiod reads it in a config of ``namespace`` (ResolveShortnameToFQDN)."""
    if host == "*" or "." in host or ":" in host:
        return host
    return f"{host}.{namespace}.svc.{domain}"


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == host or pattern == "*":
        return True
    return pattern.startswith("*.") and host.endswith(pattern[1:])


def _most_specific(docs: Sequence[Document], host: str, host_of: Callable[[Document], str]) -> list[Document]:
    """Istio's MostSpecificHostMatch: the exact host if any config has it, else the longest wildcard."""
    exact = [d for d in docs if host_of(d) == host]
    if exact:
        return exact
    wildcards = [d for d in docs if _host_matches(host_of(d), host)]
    if not wildcards:
        return []
    longest = max(len(host_of(d)) for d in wildcards)
    return [d for d in wildcards if len(host_of(d)) == longest]


def _export_to(doc: Document) -> list[str]:
    return [str(e) for e in _spec(doc).get("exportTo") or []]


def exported_to(doc: Document, namespace: str) -> bool:
    """Whether a namespaced Istio config is visible in ``namespace`` (no exportTo: everywhere)."""
    export_to = _export_to(doc)
    if not export_to:
        return True
    return "*" in export_to or namespace in export_to or ("." in export_to and namespace == _namespace(doc))


def _dr_export_to(doc: Document) -> list[str]:
    # A DestinationRule with a workloadSelector is never exported beyond its namespace.
    return ["."] if _spec(doc).get("workloadSelector") else _export_to(doc)


def _dr_local(doc: Document) -> bool:
    export_to = _dr_export_to(doc)
    return not export_to or "*" in export_to or "." in export_to or _namespace(doc) in export_to


def _dr_private_only(doc: Document) -> bool:
    export_to = _dr_export_to(doc)
    return len(export_to) == 1 and export_to[0] in (".", _namespace(doc))


def _dr_exported_to(doc: Document, namespace: str) -> bool:
    if _dr_private_only(doc):
        return False
    export_to = _dr_export_to(doc)
    return not export_to or "*" in export_to or namespace in export_to


def _dr_host(doc: Document) -> str:
    return fqdn(str(_spec(doc).get("host") or ""), _namespace(doc))


def service_entries_for(config: Configuration, host: str, namespace: str) -> list[Document]:
    """ServiceEntries visible in ``namespace`` that define ``host``."""
    return [
        se
        for se in config.of_kind(ISTIO_NETWORKING, "ServiceEntry")
        if exported_to(se, namespace) and any(_host_matches(str(h), host) for h in _spec(se).get("hosts") or [])
    ]


def service_namespace(config: Configuration, host: str, client_namespace: str) -> str:
    """The namespace istiod files a host under: a Kubernetes Service's, or its ServiceEntry's."""
    suffix = f".svc.{CLUSTER_DOMAIN}"
    if host.endswith(suffix):
        parts = host[: -len(suffix)].split(".")
        if len(parts) == 2:
            return parts[1]
    entries = service_entries_for(config, host, client_namespace)
    return _namespace(entries[0]) if entries else ""


def destination_rules_for(
    config: Configuration, client_namespace: str, host: str, root_namespace: str
) -> list[Document]:
    """The DestinationRules istiod applies for ``host`` in a proxy of ``client_namespace``
    (PushContext.destinationRule: the first of these pools that has one wins)."""
    rules = [d for d in config.of_kind(ISTIO_NETWORKING, "DestinationRule") if _host_matches(_dr_host(d), host)]
    if client_namespace != root_namespace:
        local = [d for d in rules if _namespace(d) == client_namespace and _dr_local(d)]
    else:
        local = [d for d in rules if _namespace(d) == root_namespace and _dr_private_only(d)]
    if local:
        return _most_specific(local, host, _dr_host)
    owner = service_namespace(config, host, client_namespace)
    for namespace in (owner, root_namespace):
        exported = [d for d in rules if _namespace(d) == namespace and _dr_exported_to(d, client_namespace)]
        if exported:
            return _most_specific(exported, host, _dr_host)
    return []


# ------------------------------------------------------------------------------------------ routes


@dataclass(frozen=True)
class RouteDestination:
    virtual_service: Document
    #: Gateways the route rule applies to (``mesh`` for sidecars, else ``namespace/name``).
    gateways: frozenset[str]
    host: str
    subset: str | None


def gateway_ref(reference: str, namespace: str) -> str:
    """A VirtualService's gateway reference as ``namespace/name`` (``mesh`` unchanged)."""
    if reference == MESH_GATEWAY or "/" in reference:
        return reference
    return f"{namespace}/{reference}"


def _virtual_service_gateways(vs: Document) -> list[str]:
    return [str(g) for g in _spec(vs).get("gateways") or [MESH_GATEWAY]]


def route_destinations(vs: Document) -> Iterator[RouteDestination]:
    """Every destination of every http/tls/tcp rule, with the gateways the rule applies to."""
    namespace = _namespace(vs)
    default_gateways = _virtual_service_gateways(vs)
    for kind in ("http", "tls", "tcp"):
        for rule in _spec(vs).get(kind) or []:
            matches = rule.get("match") or [{}]
            references = {g for m in matches for g in (m.get("gateways") or default_gateways)}
            gateways = frozenset(gateway_ref(str(g), namespace) for g in references)
            for route in rule.get("route") or []:
                destination = route.get("destination") or {}
                yield RouteDestination(
                    vs, gateways, fqdn(str(destination.get("host") or ""), namespace), destination.get("subset")
                )


def _all_gateway_references(vs: Document) -> set[str]:
    namespace = _namespace(vs)
    references = set(_virtual_service_gateways(vs))
    for kind in ("http", "tls", "tcp"):
        for rule in _spec(vs).get(kind) or []:
            for match in rule.get("match") or []:
                references.update(str(g) for g in match.get("gateways") or [])
    return {gateway_ref(r, namespace) for r in references}


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
        for reference in sorted(_all_gateway_references(vs) - {MESH_GATEWAY}):
            namespace, _, name = reference.partition("/")
            if not config.has(ISTIO_NETWORKING, "Gateway", namespace, name):
                yield f"{_ref(vs)} names Gateway {reference}, which does not exist"


def _gateway_route_visible(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for vs in config.of_kind(ISTIO_NETWORKING, "VirtualService"):
        bound = _all_gateway_references(vs) - {MESH_GATEWAY}
        if bound and not exported_to(vs, context.gateway_namespace):
            yield (
                f"{_ref(vs)} is bound to {', '.join(sorted(bound))} but not exported to "
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
                subsets = {str(s.get("name")) for dr in rules for s in _spec(dr).get("subsets") or []}
                if route.subset not in subsets:
                    found = ", ".join(_ref(dr) for dr in rules) or "none"
                    yield (
                        f"{_ref(vs)} routes {who} to subset {route.subset} of {route.host}; the "
                        f"DestinationRules istiod picks there ({found}) do not define it"
                    )


def _tls_settings(dr: Document) -> Iterator[Mapping[str, Any]]:
    policies = [_spec(dr).get("trafficPolicy") or {}]
    policies += [s.get("trafficPolicy") or {} for s in _spec(dr).get("subsets") or []]
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
            _namespace(g)
            for g in config.of_kind(GATEWAY_API, "Gateway")
            if _spec(g).get("gatewayClassName") == WAYPOINT_CLASS
        }
    )
    for dr in config.of_kind(ISTIO_NETWORKING, "DestinationRule"):
        if _spec(dr).get("workloadSelector"):
            readers = [_namespace(dr)]
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
        for server in _spec(gateway).get("servers") or []:
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
            yield f"{_ref(owner)} uses credentialName {name}; no Secret {namespace}/{secret} is created"
            continue
        held = set(found.get("data") or {}) | set(found.get("stringData") or {})
        missing = [key for key in keys if key not in held]
        twin = config.get("", "Secret", namespace, f"{secret}-cacert")
        if needs_ca and _VERIFIES not in held and (twin is None or _VERIFIES not in set(twin.get("data") or {})):
            missing.append(_VERIFIES)
        if missing:
            holds = ", ".join(sorted(held)) or "nothing"
            yield (
                f"{_ref(owner)} uses credentialName {name}; Secret {namespace}/{secret} lacks "
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
                resolution = str(_spec(se).get("resolution") or "NONE")
                if resolution not in RESOLVING:
                    yield (
                        f"{_ref(vs)} sends the gateway to {route.host}, whose {_ref(se)} has resolution "
                        f"{resolution}: a gateway's cluster for it is EDS, empty unless the entry lists endpoints "
                        "(503 no healthy upstream)"
                    )


def _authorization_selector(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for policy in config.of_kind(ISTIO_SECURITY, "AuthorizationPolicy"):
        selector = (_spec(policy).get("selector") or {}).get("matchLabels")
        if not selector:
            continue  # namespace-wide, or attached by targetRefs
        namespace = _namespace(policy)
        anywhere = namespace == context.root_namespace
        candidates: list[Mapping[str, Any]] = []
        if anywhere or namespace == context.gateway_namespace:
            candidates.append(context.gateway_labels)
        candidates += [
            w.get("labels") or {} for w in context.workloads.values() if anywhere or w.get("namespace") == namespace
        ]
        if not any(_selects(selector, labels) for labels in candidates):
            yield (
                f"{_ref(policy)} selects {dict(selector)}, which matches neither the egress gateway "
                f"({dict(context.gateway_labels)}) nor a workload of the check"
            )


def _gateway_selector(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for gateway in config.of_kind(ISTIO_NETWORKING, "Gateway"):
        selector = _spec(gateway).get("selector") or {}
        if not _selects(selector, context.gateway_labels):
            yield (
                f"{_ref(gateway)} selects {dict(selector)}; the egress gateway's pods carry "
                f"{dict(context.gateway_labels)}"
                if context.gateway_labels
                else f"{_ref(gateway)} selects {dict(selector)}, but no egress gateway with ready pods was found "
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
        for rule in _spec(policy).get("rules") or []:
            for peer in rule.get("from") or []:
                source = peer.get("source") or {}
                for principal in source.get("principals") or []:
                    if not any(_principal_matches(str(principal), w) for w in workloads):
                        known = ", ".join(f"ns/{w.get('namespace')}/sa/{w.get('serviceAccount')}" for w in workloads)
                        yield (
                            f"{_ref(policy)} names principal {principal}, which is no workload of the check "
                            f"({known or 'none'})"
                        )
                for namespace in source.get("namespaces") or []:
                    if not any(_namespace_matches(str(namespace), n) for n in namespaces):
                        yield (
                            f"{_ref(policy)} names source namespace {namespace}, where no workload of the "
                            f"check runs ({', '.join(sorted(namespaces)) or 'none'})"
                        )


def _authorization_target(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for policy in config.of_kind(ISTIO_SECURITY, "AuthorizationPolicy"):
        namespace = _namespace(policy)
        references = list(_spec(policy).get("targetRefs") or [])
        if _spec(policy).get("targetRef"):
            references.append(_spec(policy)["targetRef"])
        for reference in references:
            group, kind, name = (
                str(reference.get("group") or ""),
                str(reference.get("kind")),
                str(reference.get("name")),
            )
            installed = kind == "Service" and namespace == context.gateway_namespace and name == context.gateway_name
            if not installed and not config.has(group, kind, namespace, name):
                yield f"{_ref(policy)} targets {kind} {namespace}/{name}, which the check does not create"


def _waypoint_binding(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    if context.mode != "ambient":
        return
    waypoints = {
        (_namespace(g), _name(g))
        for g in config.of_kind(GATEWAY_API, "Gateway")
        if _spec(g).get("gatewayClassName") == WAYPOINT_CLASS
    }
    for entry in config.of_kind(ISTIO_NETWORKING, "ServiceEntry"):
        namespace = _namespace(entry)
        labels = (entry.get("metadata") or {}).get("labels") or {}
        namespace_doc = config.get("", "Namespace", "", namespace) or {}
        namespace_labels = (namespace_doc.get("metadata") or {}).get("labels") or {}
        bound = labels.get(USE_WAYPOINT) or namespace_labels.get(USE_WAYPOINT)
        if bound and bound != "none":
            where = labels.get(USE_WAYPOINT_NAMESPACE) or namespace_labels.get(USE_WAYPOINT_NAMESPACE) or namespace
            if (where, bound) not in waypoints:
                yield f"{_ref(entry)} is bound to waypoint {where}/{bound} ({USE_WAYPOINT}), which does not exist"
        elif not bound and any(ns == namespace for ns, _ in waypoints):
            present = ", ".join(f"{ns}/{name}" for ns, name in sorted(waypoints) if ns == namespace)
            yield (
                f"{_ref(entry)} is bound to no waypoint (no {USE_WAYPOINT} label on it or on namespace "
                f"{namespace}), although {present} is there: its traffic would bypass the waypoint"
            )


def _destination_rule_port(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for dr in config.of_kind(ISTIO_NETWORKING, "DestinationRule"):
        host = _dr_host(dr)
        entries = service_entries_for(config, host, _namespace(dr))
        if not entries:
            continue  # a Kubernetes Service, or a host the check does not define: its ports are unknown here
        declared = {int(p["number"]) for se in entries for p in _spec(se).get("ports") or [] if "number" in p}
        policies = [_spec(dr).get("trafficPolicy") or {}]
        policies += [subset.get("trafficPolicy") or {} for subset in _spec(dr).get("subsets") or []]
        for policy in policies:
            for setting in policy.get("portLevelSettings") or []:
                number = (setting.get("port") or {}).get("number")
                if number is not None and int(number) not in declared:
                    yield (
                        f"{_ref(dr)} sets port {number} of {host}, which its ServiceEntry does not declare "
                        f"(ports {', '.join(str(p) for p in sorted(declared))})"
                    )


def _origination_sni(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for dr in config.of_kind(ISTIO_NETWORKING, "DestinationRule"):
        host = _dr_host(dr)
        names = {host} | {
            str(h) for se in service_entries_for(config, host, _namespace(dr)) for h in _spec(se).get("hosts") or []
        }
        for tls in _tls_settings(dr):
            sni = tls.get("sni")
            if str(tls.get("mode") or "") == "ISTIO_MUTUAL":
                continue  # mesh mTLS to a gateway: its SNI picks the gateway's server, not the host's certificate
            if sni and not any(_host_matches(name, str(sni)) or _host_matches(str(sni), name) for name in names):
                known = ", ".join(sorted(names))
                yield f"{_ref(dr)} originates TLS to {host} with SNI {sni}, which names none of {known}"


def _known_pods(config: Configuration, context: Context) -> list[tuple[str, Mapping[str, str], frozenset[int], str]]:
    pods = [(ns, labels, ports, f"{ns} pods {dict(labels)}") for ns, labels, ports in _PLATFORM_PODS]
    if context.gateway_labels:
        pods.append(
            (context.gateway_namespace, context.gateway_labels, context.gateway_pod_ports, "the egress gateway")
        )
    for gateway in config.of_kind(GATEWAY_API, "Gateway"):
        if _spec(gateway).get("gatewayClassName") == WAYPOINT_CLASS:
            labels = {"gateway.networking.k8s.io/gateway-name": _name(gateway)}
            pods.append(
                (_namespace(gateway), labels, _WAYPOINT_PORTS, f"waypoint {_namespace(gateway)}/{_name(gateway)}")
            )
    return pods


def _network_policy_port(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    pods = _known_pods(config, context)
    for policy in config.of_kind("networking.k8s.io", "NetworkPolicy"):
        for rule in _spec(policy).get("egress") or []:
            ports = [p.get("port") for p in rule.get("ports") or [] if isinstance(p.get("port"), int)]
            for peer in rule.get("to") or []:
                namespace_selector = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
                namespace = namespace_selector.get("kubernetes.io/metadata.name", _namespace(policy))
                selector = (peer.get("podSelector") or {}).get("matchLabels")
                if selector is None or (peer.get("namespaceSelector") and not namespace_selector):
                    continue  # every pod, or namespaces by other labels: no ports to compare
                for pod_namespace, labels, listening, what in pods:
                    if pod_namespace == namespace and _selects(selector, labels):
                        wrong = [port for port in ports if port not in listening]
                        if wrong:
                            yield (
                                f"{_ref(policy)} opens port {', '.join(map(str, wrong))} to {what}, which listens "
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
