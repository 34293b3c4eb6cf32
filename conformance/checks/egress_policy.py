"""Seed 001's egress traffic policies: the typed request, and reading a provider's manifests back into it.
The config providers that express a request live in ``conformance.checks.policy_providers``; the mapping
between the vendor's policy fields and native Istio in ``conformance.checks.policy_mapping``.

An ETP step asks for one thing: *the resources that let these workloads reach these hosts through the
egress gateway with http | https-upgrade | https-passthrough | tcp* — an :class:`EgressRule`, built from
the client it lets out (its namespace and pod labels), the hosts, the port, the gateway port and the
upgrade port. A :class:`ConfigProvider` answers with the scenario manifests that express the rule:

* ``native`` (the default): upstream Istio resources, ``manifests/scenarios/etp/native/<carriage>.yaml``
  (ServiceEntry, Gateway, VirtualService, DestinationRule, and a Sidecar pair for the workload selector).
  It relies on the harness for two things a real mesh would not need: sidecars speaking mTLS to the
  gateway (the specification's rule for the gateway hop, ``Step.sidecars_reach``) and, where the gateway
  originates TLS, the run's test CA in the gateway's namespace.
* ``vendor``: the vendor's own ``ASMEgressTrafficPolicy``, ``manifests/scenarios/etp/vendor/<carriage>.yaml``,
  exactly as the seed shows it, for a mesh that serves that CRD; whatever the vendor generates from it is
  the vendor's business, the harness adds nothing.

Both providers' manifests are hand-written, one per documented rule, and each provider proves that its
manifest expresses the rule asked for (the vendor's resource is read back into rules; the native resources
are read back into the rule they implement) — a scenario and a manifest can never drift apart. The checks
are the same whichever provider runs; the report names the provider and carries :data:`FIELD_MAPPING`.

It is written with the check API's own verbs (``conformance.checks.step``, ``clients``, ``gateways``), which know
nothing of it; ``conformance.checks`` exports its types to the scenarios.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

#: Where each provider's manifests live, under ``manifests/scenarios/``.
NATIVE_MANIFESTS = "etp/native"
VENDOR_MANIFESTS = "etp/vendor"
#: The harness's Secret with the run's test CA in the gateway's namespace (see TEST_CA_ADAPTATION).
TEST_CA_MANIFEST = "harness/gateway-test-ca.yaml"
TEST_CA_SECRET = "egress-conformance-test-ca"

VENDOR_API_VERSION = "istio.alibabacloud.com/v1"
VENDOR_KIND = "ASMEgressTrafficPolicy"
#: The key under which a check's report entry records the policies and the provider.
REPORT_KEY = "egressTrafficPolicy"


#: The seed's environment set-up for its policies: the ``istio-egress`` namespace they live in.
VENDOR_NAMESPACE_MANIFEST = "etp/vendor/namespace.yaml"


class PolicyError(ValueError):
    """A rule that cannot be expressed, or a manifest that does not express the rule it is taken for."""


class EgressProtocol(enum.StrEnum):
    """``to[].port.protocol`` of the vendor's policy."""

    HTTP = "HTTP"
    HTTPS = "HTTPS"
    TCP = "TCP"


class Carriage(enum.StrEnum):
    """How a rule's traffic crosses the egress gateway (one documented policy each)."""

    HTTP = "http"
    #: The application sends HTTP; the gateway upgrades it to HTTPS towards the host.
    HTTPS_UPGRADE = "https-upgrade"
    #: The application's own TLS, carried to the host untouched.
    HTTPS_PASSTHROUGH = "https-passthrough"
    TCP = "tcp"


@dataclass(frozen=True)
class ExternalPort:
    """``to[].port``: the external service's port."""

    number: int
    name: str
    protocol: EgressProtocol

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "number": self.number, "protocol": self.protocol.value}


@dataclass(frozen=True)
class EgressRule:
    """One rule of an egress traffic policy: these workloads may reach these hosts through the gateway."""

    #: ``to[].name``: names the generated resources.
    name: str
    #: ``from[].namespace``
    namespace: str
    #: ``from[].workloadSelector``, as sorted (label, value) pairs.
    workload_selector: tuple[tuple[str, str], ...]
    #: ``to[].hosts``
    hosts: tuple[str, ...]
    port: ExternalPort
    #: ``to[].byEgressGateway.port``; None when the policy gives none (``byEgressGateway: {}``).
    gateway_port: int | None = None
    #: ``to[].httpsUpgrade.port`` when the upgrade is enabled.
    https_upgrade_port: int | None = None

    def __post_init__(self) -> None:
        if not self.hosts:
            raise PolicyError(f"egress rule {self.name!r} names no host")
        if self.https_upgrade_port is not None and self.port.protocol is not EgressProtocol.HTTP:
            raise PolicyError(f"egress rule {self.name!r}: only an HTTP port can be upgraded to HTTPS")

    @classmethod
    def of(
        cls,
        name: str,
        namespace: str,
        labels: Mapping[str, str],
        hosts: Sequence[str],
        port: ExternalPort,
        gateway_port: int | None = None,
        https_upgrade_port: int | None = None,
    ) -> EgressRule:
        return cls(name, namespace, tuple(sorted(labels.items())), tuple(hosts), port, gateway_port, https_upgrade_port)

    @property
    def carriage(self) -> Carriage:
        if self.port.protocol is EgressProtocol.TCP:
            return Carriage.TCP
        if self.port.protocol is EgressProtocol.HTTPS:
            return Carriage.HTTPS_PASSTHROUGH
        return Carriage.HTTPS_UPGRADE if self.https_upgrade_port is not None else Carriage.HTTP

    @property
    def selector(self) -> dict[str, str]:
        return dict(self.workload_selector)

    @property
    def effective_gateway_port(self) -> int:
        """The gateway port sidecars send to: the policy's, else the rule's own port."""
        return self.gateway_port if self.gateway_port is not None else self.port.number

    def with_effective_gateway_port(self) -> EgressRule:
        """The same rule with its gateway port spelled out (native resources always name one)."""
        return replace(self, gateway_port=self.effective_gateway_port)

    def record(self) -> dict[str, Any]:
        """Report and plan form, in the vendor's vocabulary."""
        record: dict[str, Any] = {
            "name": self.name,
            "carriage": self.carriage.value,
            "from": {"namespace": self.namespace, "workloadSelector": self.selector},
            "hosts": list(self.hosts),
            "port": self.port.record(),
            "byEgressGateway": {"port": self.gateway_port} if self.gateway_port is not None else {},
        }
        if self.https_upgrade_port is not None:
            record["httpsUpgrade"] = {"enabled": True, "port": self.https_upgrade_port}
        return record


# ----------------------------------------------------------------------------- reading manifests back


def rules_of_vendor_policy(doc: Mapping[str, Any]) -> list[EgressRule]:
    """The rules an ``ASMEgressTrafficPolicy`` grants: one per (from, to) pair of each egress rule."""
    if (doc.get("apiVersion"), doc.get("kind")) != (VENDOR_API_VERSION, VENDOR_KIND):
        raise PolicyError(f"not an {VENDOR_KIND}: {doc.get('apiVersion')} {doc.get('kind')}")
    rules = []
    for egress_rule in doc["spec"]["egressRules"]:
        for source in egress_rule["from"]:
            for target in egress_rule["to"]:
                port = target["port"]
                upgrade = target.get("httpsUpgrade") or {}
                rules.append(
                    EgressRule.of(
                        target["name"],
                        source["namespace"],
                        source.get("workloadSelector") or {},
                        target["hosts"],
                        ExternalPort(int(port["number"]), str(port.get("name", "")), EgressProtocol(port["protocol"])),
                        (target.get("byEgressGateway") or {}).get("port"),
                        upgrade.get("port") if upgrade.get("enabled") else None,
                    )
                )
    return rules


def _one(docs: Sequence[Mapping[str, Any]], kind: str, **metadata: Any) -> Mapping[str, Any]:
    found = [d for d in docs if d.get("kind") == kind and all(_meta(d, k) == v for k, v in metadata.items())]
    if len(found) != 1:
        where = " ".join(f"{k}={v}" for k, v in metadata.items())
        raise PolicyError(f"expected one {kind} {where}, found {len(found)}".replace("  ", " "))
    return found[0]


def _meta(doc: Mapping[str, Any], key: str) -> Any:
    return (doc.get("metadata") or {}).get(key)


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise PolicyError(problem)


def _routes_bound_to(spec: Mapping[str, Any], gateway: str) -> list[Mapping[str, Any]]:
    routes = [*spec.get("http", []), *spec.get("tls", []), *spec.get("tcp", [])]
    return [r for r in routes if all(gateway in m.get("gateways", []) for m in r["match"])]


def _destination(route: Mapping[str, Any]) -> tuple[str, int]:
    (weighted,) = route["route"]
    destination = weighted["destination"]
    return str(destination["host"]), int(destination["port"]["number"])


def rule_of_native_resources(docs: Sequence[Mapping[str, Any]]) -> EgressRule:
    """The rule a native translation implements, read back from its resources (the mapping, inverted).

    Also checks the shape every native translation shares: exports limited to the rule's namespace and the
    gateway's, the Sidecar pair, one ISTIO_MUTUAL gateway server for the namespace, two hops (HTTP: one
    VirtualService per host; HTTPS and TCP: one VirtualService forwarding to the first host).
    """
    service_entry = _one(docs, "ServiceEntry")
    name, namespace = _meta(service_entry, "name"), _meta(service_entry, "namespace")
    hosts = list(service_entry["spec"]["hosts"])
    gateway = _one(docs, "Gateway")
    gateway_namespace = _meta(gateway, "namespace")
    gateway_ref = f"{gateway_namespace}/{_meta(gateway, 'name')}"
    exported = [".", gateway_namespace]
    virtual_services = [d for d in docs if d.get("kind") == "VirtualService"]
    for doc in (service_entry, *virtual_services):
        _expect(_meta(doc, "namespace") == namespace, f"{doc['kind']} {_meta(doc, 'name')}: not in {namespace}")
        _expect(
            doc["spec"].get("exportTo") == exported, f"{doc['kind']} {_meta(doc, 'name')}: exportTo must be {exported}"
        )
    _expect(
        sorted(h for vs in virtual_services for h in vs["spec"]["hosts"]) == sorted(hosts),
        f"the VirtualServices of {name} must cover the ServiceEntry's hosts, each once",
    )

    workload_sidecar = _one(docs, "Sidecar", name=name, namespace=namespace)
    default_sidecar = _one(docs, "Sidecar", name=_meta(gateway, "name"), namespace=namespace)
    _expect(
        "workloadSelector" not in default_sidecar["spec"]
        and default_sidecar["spec"]["egress"] == [{"hosts": [f"{gateway_namespace}/*"]}],
        f"Sidecar {namespace}/{_meta(gateway, 'name')} must be the namespace's default, importing the gateway's only",
    )
    _expect(
        workload_sidecar["spec"]["egress"] == [{"hosts": ["./*", f"{gateway_namespace}/*"]}],
        f"Sidecar {namespace}/{name} must import its namespace and the gateway's",
    )

    (server,) = gateway["spec"]["servers"]
    _expect(
        server["hosts"] == [f"{namespace}/*"] and server["tls"]["mode"] == "ISTIO_MUTUAL",
        f"Gateway {gateway_ref}: its server must take mesh mTLS for {namespace}/*",
    )
    gateway_port = int(server["port"]["number"])

    mesh_ports, upstream_ports = set(), set()
    for vs in virtual_services:
        vs_name, spec = _meta(vs, "name"), vs["spec"]
        mesh_routes, gateway_routes = _routes_bound_to(spec, "mesh"), _routes_bound_to(spec, gateway_ref)
        _expect(len(mesh_routes) == 1 and len(gateway_routes) == 1, f"VirtualService {vs_name}: two hops expected")
        ((mesh_route,), (gateway_route,)) = mesh_routes, gateway_routes
        _expect(_destination(mesh_route)[1] == gateway_port, f"VirtualService {vs_name}: mesh hop misses the gateway")
        _expect(
            all(m["port"] == gateway_port for m in gateway_route["match"]),
            f"VirtualService {vs_name}: the gateway hop must match the gateway port {gateway_port}",
        )
        upstream_host, upstream_port = _destination(gateway_route)
        # An HTTP gateway hop routes by host; a TLS or TCP one cannot (see FIELD_MAPPING): the first host.
        expected_host = spec["hosts"][0] if "http" in spec else hosts[0]
        _expect(upstream_host == expected_host, f"VirtualService {vs_name}: the gateway hop reaches {upstream_host}")
        mesh_ports.add(int(mesh_route["match"][0]["port"]))
        upstream_ports.add(upstream_port)
    _expect(len(mesh_ports) == 1 and len(upstream_ports) == 1, f"the VirtualServices of {name} disagree on ports")
    ((port_number,), (upstream_port,)) = mesh_ports, upstream_ports

    upgrade = upstream_port if upstream_port != port_number else None
    if upgrade is not None:
        origination = {"port": {"number": upgrade}, "tls": {"mode": "SIMPLE", "credentialName": TEST_CA_SECRET}}
        for host in hosts:
            rule = _one(docs, "DestinationRule", name=f"{name}-{host.replace('.', '-')}")
            _expect(
                rule["spec"]["host"] == host
                and rule["spec"].get("exportTo") == ["."]
                and _meta(rule, "namespace") == gateway_namespace
                and rule["spec"]["trafficPolicy"]["portLevelSettings"] == [origination],
                f"DestinationRule {_meta(rule, 'name')}: the gateway must originate TLS to {host}:{upgrade}",
            )
    (port_spec,) = [p for p in service_entry["spec"]["ports"] if p["number"] == port_number]
    return EgressRule.of(
        name,
        namespace,
        workload_sidecar["spec"]["workloadSelector"]["labels"],
        hosts,
        ExternalPort(port_spec["number"], port_spec["name"], EgressProtocol(port_spec["protocol"])),
        gateway_port,
        upgrade,
    )
