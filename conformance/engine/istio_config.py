"""A check's Istio configuration as istiod reads it: the objects in force, and the lookups istiod makes
over them (host matching, exportTo, the most specific ServiceEntry and DestinationRule, route destinations).
The cross-reference rules (``conformance.engine.crossref``) are written over this model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


# ------------------------------------------------------------------------------------------ configuration


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def _key(api_version: str, kind: str, namespace: str | None, name: str) -> tuple[str, str, str, str]:
    return _group(api_version), kind, namespace or "", name


def namespace_of(doc: Document) -> str:
    return str((doc.get("metadata") or {}).get("namespace") or "")


def name_of(doc: Document) -> str:
    return str((doc.get("metadata") or {}).get("name") or "")


def ref_of(doc: Document) -> str:
    return f"{doc.get('kind')} {namespace_of(doc)}/{name_of(doc)}"


def spec_of(doc: Document) -> Mapping[str, Any]:
    return doc.get("spec") or {}


class Configuration:
    """The objects in force at one point of a check: what its applies left, minus what it deleted."""

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str, str, str], Document] = {}

    def apply(self, docs: Iterable[Document]) -> None:
        for doc in docs:
            self._objects[_key(str(doc["apiVersion"]), str(doc["kind"]), namespace_of(doc), name_of(doc))] = doc

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


def host_matches(pattern: str, host: str) -> bool:
    if pattern == host or pattern == "*":
        return True
    return pattern.startswith("*.") and host.endswith(pattern[1:])


def _most_specific(docs: Sequence[Document], host: str, host_of: Callable[[Document], str]) -> list[Document]:
    """Istio's MostSpecificHostMatch: the exact host if any config has it, else the longest wildcard."""
    exact = [d for d in docs if host_of(d) == host]
    if exact:
        return exact
    wildcards = [d for d in docs if host_matches(host_of(d), host)]
    if not wildcards:
        return []
    longest = max(len(host_of(d)) for d in wildcards)
    return [d for d in wildcards if len(host_of(d)) == longest]


def _export_to(doc: Document) -> list[str]:
    return [str(e) for e in spec_of(doc).get("exportTo") or []]


def exported_to(doc: Document, namespace: str) -> bool:
    """Whether a namespaced Istio config is visible in ``namespace`` (no exportTo: everywhere)."""
    export_to = _export_to(doc)
    if not export_to:
        return True
    return "*" in export_to or namespace in export_to or ("." in export_to and namespace == namespace_of(doc))


def _dr_export_to(doc: Document) -> list[str]:
    # A DestinationRule with a workloadSelector is never exported beyond its namespace.
    return ["."] if spec_of(doc).get("workloadSelector") else _export_to(doc)


def _dr_local(doc: Document) -> bool:
    export_to = _dr_export_to(doc)
    return not export_to or "*" in export_to or "." in export_to or namespace_of(doc) in export_to


def _dr_private_only(doc: Document) -> bool:
    export_to = _dr_export_to(doc)
    return len(export_to) == 1 and export_to[0] in (".", namespace_of(doc))


def _dr_exported_to(doc: Document, namespace: str) -> bool:
    if _dr_private_only(doc):
        return False
    export_to = _dr_export_to(doc)
    return not export_to or "*" in export_to or namespace in export_to


def dr_host(doc: Document) -> str:
    return fqdn(str(spec_of(doc).get("host") or ""), namespace_of(doc))


def service_entries_for(config: Configuration, host: str, namespace: str) -> list[Document]:
    """ServiceEntries visible in ``namespace`` that define ``host``."""
    return [
        se
        for se in config.of_kind(ISTIO_NETWORKING, "ServiceEntry")
        if exported_to(se, namespace) and any(host_matches(str(h), host) for h in spec_of(se).get("hosts") or [])
    ]


def service_namespace(config: Configuration, host: str, client_namespace: str) -> str:
    """The namespace istiod files a host under: a Kubernetes Service's, or its ServiceEntry's."""
    suffix = f".svc.{CLUSTER_DOMAIN}"
    if host.endswith(suffix):
        parts = host[: -len(suffix)].split(".")
        if len(parts) == 2:
            return parts[1]
    entries = service_entries_for(config, host, client_namespace)
    return namespace_of(entries[0]) if entries else ""


def destination_rules_for(
    config: Configuration, client_namespace: str, host: str, root_namespace: str
) -> list[Document]:
    """The DestinationRules istiod applies for ``host`` in a proxy of ``client_namespace``
    (PushContext.destinationRule: the first of these pools that has one wins)."""
    rules = [d for d in config.of_kind(ISTIO_NETWORKING, "DestinationRule") if host_matches(dr_host(d), host)]
    if client_namespace != root_namespace:
        local = [d for d in rules if namespace_of(d) == client_namespace and _dr_local(d)]
    else:
        local = [d for d in rules if namespace_of(d) == root_namespace and _dr_private_only(d)]
    if local:
        return _most_specific(local, host, dr_host)
    owner = service_namespace(config, host, client_namespace)
    for namespace in (owner, root_namespace):
        exported = [d for d in rules if namespace_of(d) == namespace and _dr_exported_to(d, client_namespace)]
        if exported:
            return _most_specific(exported, host, dr_host)
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
    return [str(g) for g in spec_of(vs).get("gateways") or [MESH_GATEWAY]]


def route_destinations(vs: Document) -> Iterator[RouteDestination]:
    """Every destination of every http/tls/tcp rule, with the gateways the rule applies to."""
    namespace = namespace_of(vs)
    default_gateways = _virtual_service_gateways(vs)
    for kind in ("http", "tls", "tcp"):
        for rule in spec_of(vs).get(kind) or []:
            matches = rule.get("match") or [{}]
            references = {g for m in matches for g in (m.get("gateways") or default_gateways)}
            gateways = frozenset(gateway_ref(str(g), namespace) for g in references)
            for route in rule.get("route") or []:
                destination = route.get("destination") or {}
                yield RouteDestination(
                    vs, gateways, fqdn(str(destination.get("host") or ""), namespace), destination.get("subset")
                )


def all_gateway_references(vs: Document) -> set[str]:
    namespace = namespace_of(vs)
    references = set(_virtual_service_gateways(vs))
    for kind in ("http", "tls", "tcp"):
        for rule in spec_of(vs).get(kind) or []:
            for match in rule.get("match") or []:
                references.update(str(g) for g in match.get("gateways") or [])
    return {gateway_ref(r, namespace) for r in references}
