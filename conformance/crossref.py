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
- ``credential-secret``: a ``credentialName`` Secret exists where the proxy reads it: the gateway's
  namespace (in ambient mode each waypoint's), or the DestinationRule's own for one with a workloadSelector.
- ``service-entry-resolution``: a ServiceEntry a gateway routes to resolves by DNS or is STATIC; with
  NONE the gateway forwards to the original destination of its own downstream connection, itself.
- ``authorization-selector``: an AuthorizationPolicy's selector matches the egress gateway as installed
  (plan ``egressGateway.podLabels``) or, outside the gateway's namespace, a workload of the check.
- ``gateway-selector``: an Istio Gateway's selector matches the egress gateway's pod labels.
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

    def of_kind(self, group: str, kind: str) -> list[Document]:
        return [doc for (g, k, _, _), doc in self._objects.items() if g == group and k == kind]

    def has(self, group: str, kind: str, namespace: str, name: str) -> bool:
        return (group, kind, namespace, name) in self._objects


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
                yield RouteDestination(vs, gateways, fqdn(str(destination.get("host") or ""), namespace),
                                       destination.get("subset"))  # fmt: skip


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

    @classmethod
    def of(cls, plan: Mapping[str, Any], check: Mapping[str, Any]) -> Context:
        gateway = plan["egressGateway"]
        root = str((plan.get("meshConfig") or {}).get("rootNamespace") or DEFAULT_ROOT_NAMESPACE)
        workloads = {str(w["ref"]): w for w in check.get("workloads") or []}
        return cls(str(gateway["namespace"]), dict(gateway["podLabels"]), root, workloads, str(check["mode"]))


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
            yield (f"{_ref(vs)} is bound to {', '.join(sorted(bound))} but not exported to "
                   f"{context.gateway_namespace}, where the gateway proxies run")  # fmt: skip


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
                    yield (f"{_ref(vs)} routes {who} to subset {route.subset} of {route.host}; the "
                           f"DestinationRules istiod picks there ({found}) do not define it")  # fmt: skip


def _tls_settings(dr: Document) -> Iterator[Mapping[str, Any]]:
    policies = [_spec(dr).get("trafficPolicy") or {}]
    policies += [s.get("trafficPolicy") or {} for s in _spec(dr).get("subsets") or []]
    for policy in policies:
        yield policy.get("tls") or {}
        for port_policy in policy.get("portLevelSettings") or []:
            yield port_policy.get("tls") or {}


def _credential_secret(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    wanted: list[tuple[Document, str, str]] = []
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
        names = [str(tls["credentialName"]) for tls in _tls_settings(dr) if tls.get("credentialName")]
        wanted += [(dr, name, namespace) for name in names for namespace in readers]
    for gateway in config.of_kind(ISTIO_NETWORKING, "Gateway"):
        for server in _spec(gateway).get("servers") or []:
            name = (server.get("tls") or {}).get("credentialName")
            if name:
                wanted.append((gateway, str(name), context.gateway_namespace))
    for owner, name, namespace in wanted:
        secret = name.removeprefix("kubernetes://")
        if "://" in secret:
            continue  # another credential source (e.g. a ConfigMap), not a Secret
        if not config.has("", "Secret", namespace, secret):
            yield f"{_ref(owner)} uses credentialName {name}; no Secret {namespace}/{secret} is created"


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
                    yield (f"{_ref(vs)} sends the gateway to {route.host}, whose {_ref(se)} has resolution "
                           f"{resolution}: the gateway would forward to its own address")  # fmt: skip


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
        candidates += [w.get("labels") or {} for w in context.workloads.values()
                       if anywhere or w.get("namespace") == namespace]  # fmt: skip
        if not any(_selects(selector, labels) for labels in candidates):
            yield (f"{_ref(policy)} selects {dict(selector)}, which matches neither the egress gateway "
                   f"({dict(context.gateway_labels)}) nor a workload of the check")  # fmt: skip


def _gateway_selector(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for gateway in config.of_kind(ISTIO_NETWORKING, "Gateway"):
        selector = _spec(gateway).get("selector") or {}
        if not _selects(selector, context.gateway_labels):
            yield (f"{_ref(gateway)} selects {dict(selector)}; the egress gateway's pods carry "
                   f"{dict(context.gateway_labels)}")  # fmt: skip


RULES = {
    Rule.GATEWAY_EXISTS: _gateway_exists,
    Rule.GATEWAY_ROUTE_VISIBLE: _gateway_route_visible,
    Rule.SUBSET_DEFINED: _subset_defined,
    Rule.CREDENTIAL_SECRET: _credential_secret,
    Rule.SERVICE_ENTRY_RESOLUTION: _service_entry_resolution,
    Rule.AUTHORIZATION_SELECTOR: _authorization_selector,
    Rule.GATEWAY_SELECTOR: _gateway_selector,
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
        problems += [f"{check['id']} declares it breaks {rule.value} ({why}), but its plan does not"
                     for rule, why in declared.items() if rule not in broken]  # fmt: skip
    return problems
