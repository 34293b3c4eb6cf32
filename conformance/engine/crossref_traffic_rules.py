"""Cross-reference rules on the traffic path: Gateways and the routes bound to them, subsets, TLS origination
and its Secrets, ServiceEntry resolution and ports."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from conformance.engine.crossref_context import Context, Rule, selects
from conformance.engine.istio_config import (
    GATEWAY_API,
    ISTIO_NETWORKING,
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
    namespace_of,
    ref_of,
    route_destinations,
    service_entries_for,
    spec_of,
)


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


def _gateway_selector(config: Configuration, context: Context, client: Mapping[str, Any] | None) -> Iterator[str]:
    for gateway in config.of_kind(ISTIO_NETWORKING, "Gateway"):
        selector = spec_of(gateway).get("selector") or {}
        if not selects(selector, context.gateway_labels):
            yield (
                f"{ref_of(gateway)} selects {dict(selector)}; the egress gateway's pods carry "
                f"{dict(context.gateway_labels)}"
                if context.gateway_labels
                else f"{ref_of(gateway)} selects {dict(selector)}, but no egress gateway with ready pods was found "
                f"(Service {context.gateway_namespace}/istio-egressgateway)"
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


TRAFFIC_RULES = {
    Rule.GATEWAY_EXISTS: _gateway_exists,
    Rule.GATEWAY_ROUTE_VISIBLE: _gateway_route_visible,
    Rule.SUBSET_DEFINED: _subset_defined,
    Rule.CREDENTIAL_SECRET: _credential_secret,
    Rule.SERVICE_ENTRY_RESOLUTION: _service_entry_resolution,
    Rule.GATEWAY_SELECTOR: _gateway_selector,
    Rule.DESTINATION_RULE_PORT: _destination_rule_port,
    Rule.ORIGINATION_SNI: _origination_sni,
}
