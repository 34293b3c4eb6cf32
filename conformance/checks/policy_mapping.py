"""How seed 001's policy fields map onto native Istio resources, as the report carries it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldMapping:
    """One row of the mapping table: a field of the vendor's policy and where native Istio expresses it."""

    #: Path of the field in the vendor's resource (``[]`` for list items).
    policy_field: str
    resource: str
    native_field: str

    def record(self) -> dict[str, str]:
        return {"policyField": self.policy_field, "nativeResource": self.resource, "nativeField": self.native_field}


#: Not a field: the seed's sidecar-to-gateway hop is always mTLS, whatever the policy says.
IMPLICIT_GATEWAY_MTLS = "(sidecar to gateway: mTLS)"
_FROM = "spec.egressRules[].from[]"
_TO = "spec.egressRules[].to[]"
_SIDECAR = "Sidecar <to[].name>"
_DEFAULT_SIDECAR = "Sidecar (namespace default)"

#: Seed 001's policy fields, and the native resources and fields of ``etp/native/*.yaml`` that express them.
FIELD_MAPPING: tuple[FieldMapping, ...] = (
    FieldMapping("metadata.name", "Gateway", "metadata.name, in istio-system"),
    FieldMapping("metadata.name", _DEFAULT_SIDECAR, "metadata.name"),
    FieldMapping("metadata.namespace", "(none)", "none: from[].namespace and istio-system"),
    FieldMapping("spec.byEgressGateway.name", "Gateway", "spec.selector: istio=<name>"),
    FieldMapping("spec.byEgressGateway.name", "VirtualService", "mesh hop: destination, the gateway Service"),
    FieldMapping(f"{_FROM}.namespace", "ServiceEntry", "metadata.namespace; exportTo ., istio-system"),
    FieldMapping(f"{_FROM}.namespace", "VirtualService", "metadata.namespace; exportTo ., istio-system"),
    FieldMapping(f"{_FROM}.namespace", "Sidecar", "metadata.namespace"),
    FieldMapping(f"{_FROM}.namespace", "Gateway", "spec.servers[].hosts: <namespace>/*"),
    FieldMapping(f"{_FROM}.workloadSelector", _SIDECAR, "spec.workloadSelector.labels"),
    FieldMapping(f"{_FROM}.workloadSelector", _SIDECAR, "spec.egress[].hosts: ./*, istio-system/*"),
    FieldMapping(f"{_FROM}.workloadSelector", _DEFAULT_SIDECAR, "spec.egress[].hosts: istio-system/*"),
    FieldMapping(f"{_TO}.name", "ServiceEntry", "metadata.name"),
    FieldMapping(f"{_TO}.name", "VirtualService", "HTTP: <to[].name>-<host>; else <to[].name>"),
    FieldMapping(f"{_TO}.name", _SIDECAR, "metadata.name"),
    FieldMapping(f"{_TO}.name", "DestinationRule", "metadata.name: <to[].name>-<host>"),
    FieldMapping(f"{_TO}.hosts", "ServiceEntry", "spec.hosts"),
    FieldMapping(f"{_TO}.hosts", "VirtualService", "spec.hosts"),
    FieldMapping(f"{_TO}.hosts", "VirtualService", "HTTP: one per host, both hops"),
    FieldMapping(f"{_TO}.hosts", "VirtualService", "HTTPS mesh hop: tls match sniHosts"),
    FieldMapping(f"{_TO}.hosts", "VirtualService", "HTTPS, TCP gateway hop: tcp to the 1st host"),
    FieldMapping(f"{_TO}.hosts", "DestinationRule", "spec.host: one per host"),
    FieldMapping(f"{_TO}.port.name", "ServiceEntry", "spec.ports[].name"),
    FieldMapping(f"{_TO}.port.number", "ServiceEntry", "spec.ports[].number"),
    FieldMapping(f"{_TO}.port.number", "VirtualService", "mesh hop: match port"),
    FieldMapping(f"{_TO}.port.number", "VirtualService", "gateway hop: destination port"),
    FieldMapping(f"{_TO}.port.protocol", "ServiceEntry", "spec.ports[].protocol"),
    FieldMapping(f"{_TO}.port.protocol", "VirtualService", "routes: HTTP http; HTTPS tls, tcp; TCP tcp"),
    FieldMapping(f"{_TO}.port.protocol", "Gateway", "spec.servers[].port.protocol: HTTPS or TLS"),
    FieldMapping(f"{_TO}.byEgressGateway.port", "Gateway", "spec.servers[].port.number"),
    FieldMapping(f"{_TO}.byEgressGateway.port", "VirtualService", "mesh hop: destination port"),
    FieldMapping(f"{_TO}.byEgressGateway.port", "VirtualService", "gateway hop: match port"),
    FieldMapping(f"{_TO}.byEgressGateway", "Gateway", "no port: spec.servers[].port = to[].port"),
    FieldMapping(f"{_TO}.byEgressGateway", "VirtualService", "no port: both hops use to[].port.number"),
    FieldMapping(f"{_TO}.httpsUpgrade.enabled", "DestinationRule", "tls.mode SIMPLE, istio-system, exportTo ."),
    FieldMapping(f"{_TO}.httpsUpgrade.port", "ServiceEntry", "spec.ports[]: that port, protocol HTTPS"),
    FieldMapping(f"{_TO}.httpsUpgrade.port", "VirtualService", "gateway hop: destination port"),
    FieldMapping(f"{_TO}.httpsUpgrade.port", "DestinationRule", "portLevelSettings[].port.number"),
    FieldMapping(IMPLICIT_GATEWAY_MTLS, "Gateway", "spec.servers[].tls.mode: ISTIO_MUTUAL"),
    FieldMapping(IMPLICIT_GATEWAY_MTLS, "DestinationRule (harness)", "gateway host ISTIO_MUTUAL if pods unlabelled"),
)


def mapping_table() -> str:
    """The mapping as the plain table the ETP scenario module's docstring holds (checked by a test)."""
    rows = [("policy field", "native resource", "native field")]
    rows += [(m.policy_field, m.resource, m.native_field) for m in FIELD_MAPPING]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{policy:<{widths[0]}}  {resource:<{widths[1]}}  {native}" for policy, resource, native in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def mapping_record() -> list[dict[str, str]]:
    return [m.record() for m in FIELD_MAPPING]


def policy_fields(value: Any, prefix: str = "") -> Iterator[str]:
    """Paths of the fields a policy document sets (a label map, a list of plain values and an empty object
    each count as one field)."""
    if isinstance(value, Mapping):
        if not value or prefix.endswith("workloadSelector"):
            yield prefix
            return
        for key, child in value.items():
            yield from policy_fields(child, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and any(isinstance(item, Mapping | list) for item in value):
        for item in value:
            yield from policy_fields(item, f"{prefix}[]")
    else:
        yield prefix
