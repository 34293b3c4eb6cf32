"""Plan mode (``pytest -m egress --plan``): every selected check runs against a runtime that does nothing.

The scenario code is the same as in a real run; only the runtime differs. :class:`PlanRuntime` answers with
planned values (workload IPs, the external world's addresses, the egress gateway as the overlay installs
it) and lets the scenario layer record each action, which it prints. At the end the records become
``plan.json`` (schema ``conformance/schemas/plan.schema.json``): what a real run would create and change,
and the routing oracle's input. No cluster, no container engine, no kubeconfig.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from conformance import DOCUMENT_API_VERSION, __version__
from conformance.core import manifests, progress
from conformance.core.timeouts import Timeouts
from conformance.core.versions import DEFAULT_ISTIO_VERSION
from conformance.engine.actions import Action, CheckActions
from conformance.engine.printout import describe_action
from conformance.engine.runtime import (
    SECRET_VARIABLES,
    Applied,
    Dataplane,
    EgressGatewayInfo,
    GatewayPort,
    LogLookup,
    LogSource,
    Observation,
    RuntimeBase,
    Until,
    Workload,
    WorkloadSpec,
    scenario_variables,
)
from conformance.istio.components import ISTIO_NAMESPACE
from conformance.istio.mesh_config import OutboundMode
from conformance.kube.api import ObjectRef
from conformance.probe.accesslog import AccessLogEntry
from conformance.probe.curl import CurlRequest
from conformance.probe.log_matchers import LogExpectation
from conformance.probe.responses import ResponseExpectation
from conformance.settings.options import MeshMode, PlanGateway
from conformance.world.external import DEFAULT_NAMESPACE, INGRESS_HOST, PUBLIC_HOSTS
from conformance.world.workloads import WORKLOADS, namespace_labels, probe_client_spec

PLAN_FILE = "plan.json"
PLAN_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "plan.schema.json"
PLAN_API_VERSION = DOCUMENT_API_VERSION

#: Planned addresses: stand-ins for what the cluster assigns (documentation ranges of kind's defaults).
PLANNED_SERVICE_RANGE = ipaddress.ip_network("10.96.100.0/24")
PLANNED_POD_RANGE = ipaddress.ip_network("10.244.0.0/24")
#: Index in PLANNED_POD_RANGE of the first client workload's planned address (10.244.0.21).
PLANNED_FIRST_POD = 20
#: The chart's labels and service account of the egress gateway (manifests/charts/gateways/istio-egress).
EGRESS_GATEWAY_POD_LABELS = {"app": "istio-egressgateway", "istio": "egressgateway"}
EGRESS_GATEWAY_SERVICE_ACCOUNT = "istio-egressgateway-service-account"
#: Stand-in for secret material in a plan: valid base64, obviously not a key.
PLANNED_SECRET = "UExBTk5FRA=="


def planned_host_addresses() -> dict[str, str]:
    """Public name -> planned ClusterIP, in the external world's order."""
    hosts = list(PLANNED_SERVICE_RANGE.hosts())
    return {host.name: str(hosts[10 + index]) for index, host in enumerate(PUBLIC_HOSTS)}


def sidecar_overlay_meshconfig() -> dict[str, Any]:
    (overlay,) = manifests.render("istio/sidecar.yaml")
    return dict(overlay["spec"].get("meshConfig") or {})


def overlay_egress_gateway() -> EgressGatewayInfo:
    """The egress gateway as ``manifests/istio/sidecar.yaml`` installs it (the chart's labels, the
    overlay's ports; istioctl's rendering of it is checked by the routing oracle's tests)."""
    (overlay,) = manifests.render("istio/sidecar.yaml")
    gateways = overlay["spec"]["components"]["egressGateways"]
    gateway = next(g for g in gateways if g.get("enabled"))
    ports = tuple(
        GatewayPort(str(p["name"]), int(p["port"]), int(p["targetPort"]), str(p.get("protocol", "TCP")))
        for p in gateway["k8s"]["service"]["ports"]
    )
    return EgressGatewayInfo(
        ISTIO_NAMESPACE, str(gateway["name"]), EGRESS_GATEWAY_SERVICE_ACCOUNT, dict(EGRESS_GATEWAY_POD_LABELS), ports
    )


def planned_egress_gateway(variant: PlanGateway) -> EgressGatewayInfo:
    """The overlay's egress gateway, its pods labelled as the chosen variant has them."""
    gateway = overlay_egress_gateway()
    if variant is PlanGateway.UPSTREAM:
        return gateway
    labels = {**gateway.pod_labels, EgressGatewayInfo.TLS_MODE_LABEL: "istio"}
    return EgressGatewayInfo(gateway.namespace, gateway.name, gateway.service_account, labels, gateway.ports)


class PlanRuntime(RuntimeBase):
    """A runtime that carries nothing out; it answers with planned values."""

    planning = True

    def __init__(
        self,
        mode: MeshMode,
        timeouts: Timeouts,
        gateway: EgressGatewayInfo | None = None,
        istio_version: str = DEFAULT_ISTIO_VERSION,
    ) -> None:
        super().__init__(mode, timeouts, istio_version)
        self._gateway = gateway or overlay_egress_gateway()
        self._addresses = planned_host_addresses()
        self._workloads: dict[str, Workload] = {}

    def placeholders(self) -> Mapping[str, str]:
        named = {address: f"<{host} address>" for host, address in self._addresses.items()}
        return named | {w.ip: f"<{ref} pod IP>" for ref, w in self._workloads.items() if w.ip}

    def announce(self, check_id: str, action: Action) -> None:
        """The plan's printout: each action as the check records it."""
        progress.info(f"[{check_id} {self.mode.value}] {describe_action(action.as_dict(), self.placeholders())}")

    def variables(self) -> Mapping[str, str]:
        return scenario_variables(
            ingress_ip=self._addresses[INGRESS_HOST],
            external_namespace=DEFAULT_NAMESPACE,
            gateway_namespace=self._gateway.namespace,
            gateway_istio_label=self._gateway.pod_labels.get("istio", "egressgateway"),
            client_crt=PLANNED_SECRET,
            client_key=PLANNED_SECRET,
            ca_crt=PLANNED_SECRET,
        )

    def secret_variables(self) -> frozenset[str]:
        return SECRET_VARIABLES

    def secret_values(self) -> list[str]:
        return []

    def apply(self, docs: Sequence[dict[str, Any]]) -> list[Applied]:
        refs = []
        for doc in docs:
            metadata = doc.get("metadata") or {}
            refs.append(
                Applied(
                    ObjectRef(
                        str(doc["apiVersion"]), str(doc["kind"]), str(metadata["name"]), metadata.get("namespace")
                    ),
                    None,
                )
            )
        return refs

    def delete(self, refs: Sequence[ObjectRef]) -> None:
        return None

    def release(self, refs: Sequence[ObjectRef]) -> None:
        return None

    def outbound_policy(self, mode: OutboundMode) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def wait_condition(self, ref: ObjectRef, condition: str, status: str) -> None:
        return None

    def workload(self, spec: WorkloadSpec) -> Workload:
        if spec.ref not in self._workloads:
            # Every client namespace is labelled for the mode, whichever client comes first (as the live
            # deployer does); a client outside the mesh opts out by a label of its own pod.
            labels = namespace_labels(self._mode, spec.namespace)
            address = self._planned_address(spec)
            self._workloads[spec.ref] = Workload(
                spec, f"{spec.name}-planned", address, spec.dataplane(self._mode), labels
            )
        return self._workloads[spec.ref]

    def _planned_address(self, spec: WorkloadSpec) -> str:
        """A pod address fixed per known workload, so a check's plan does not depend on which checks ran
        before it; other workloads follow in order of first use."""
        hosts = list(PLANNED_POD_RANGE.hosts())
        known = list(WORKLOADS)
        if spec.ref in known:
            return str(hosts[PLANNED_FIRST_POD + known.index(spec.ref)])
        others = sum(1 for ref in self._workloads if ref not in known)
        return str(hosts[PLANNED_FIRST_POD + len(known) + others])

    def probe_client(self) -> Workload:
        spec = probe_client_spec(f"{DEFAULT_NAMESPACE}-probe")
        if spec.ref not in self._workloads:
            hosts = list(PLANNED_POD_RANGE.hosts())
            self._workloads[spec.ref] = Workload(spec, "probe-planned", str(hosts[9]), Dataplane.NONE, {})
        return self._workloads[spec.ref]

    def await_sidecar(self, client: Workload) -> None:
        return None

    def egress_gateway(self) -> EgressGatewayInfo | None:
        return self._gateway if self._mode is MeshMode.SIDECAR else None

    def probe(
        self,
        probe_id: str,
        client: Workload,
        request: CurlRequest,
        expectation: ResponseExpectation,
        until: Until,
        changed_at: float | None,
    ) -> Observation:
        return Observation(probe_id, client, request, expectation, until, None)

    def await_log_entry(
        self, source: LogSource, observation: Observation, expectation: LogExpectation, lookup: LogLookup
    ) -> AccessLogEntry | None:
        return None

    def log_entries(self, source: LogSource, observation: Observation, lookup: LogLookup) -> list[AccessLogEntry]:
        return []


class Plan:
    """The checks of a plan run, collected as they finish, written as ``plan.json``."""

    def __init__(self, istio_version: str, gateway: EgressGatewayInfo | None = None) -> None:
        self.istio_version = istio_version
        self.gateway = gateway or overlay_egress_gateway()
        self.checks: list[CheckActions] = []

    def add(self, actions: CheckActions) -> None:
        self.checks.append(actions)

    def document(self) -> dict[str, Any]:
        addresses = planned_host_addresses()
        return {
            "apiVersion": PLAN_API_VERSION,
            "kind": "Plan",
            "harnessVersion": __version__,
            "istioVersion": self.istio_version,
            "meshConfig": sidecar_overlay_meshconfig(),
            "externalWorld": {
                "namespace": DEFAULT_NAMESPACE,
                "hosts": addresses,
                "ingressAddress": addresses[INGRESS_HOST],
            },
            "egressGateway": self.gateway.record(),
            "checks": [c.as_dict() for c in self.checks],
        }

    def write(self, directory: Path) -> Path:
        document = self.document()
        validate_plan(document)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / PLAN_FILE
        path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        return path


@lru_cache(maxsize=1)
def _plan_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(PLAN_SCHEMA.read_text(encoding="utf-8"))
    return schema


def validate_plan(document: Mapping[str, Any]) -> None:
    """Raise jsonschema.ValidationError when the document breaks the published plan format."""
    jsonschema.Draft202012Validator(_plan_schema()).validate(document)


__all__ = [
    "PLAN_FILE",
    "Plan",
    "PlanRuntime",
    "overlay_egress_gateway",
    "planned_host_addresses",
    "validate_plan",
]
