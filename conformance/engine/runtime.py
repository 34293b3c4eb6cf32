"""The seam between scenario code and what carries it out: a live cluster, or the plan.

Scenario code (``conformance.checks``) never talks to the API server, never polls and never reads logs
itself; it asks a :class:`Runtime`. :class:`conformance.runtimes.live.LiveRuntime` does each thing on the cluster
(server-side apply, waits, curl in pods, access-log reads, all polling through ``conformance.core.expect``);
:class:`conformance.runtimes.planning.PlanRuntime` does nothing and answers with planned values, so a plan run
executes every line of scenario code without a cluster. Both record nothing: recording the check's
actions is the scenario layer's job, identical in both.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from conformance.core.timeouts import Timeouts
from conformance.engine.actions import Action
from conformance.istio.mesh_config import OutboundMode
from conformance.kube.api import ObjectRef
from conformance.probe.accesslog import AccessLogEntry
from conformance.probe.curl import CurlRequest
from conformance.probe.log_matchers import LogExpectation
from conformance.probe.responses import ProbeResult, ResponseExpectation
from conformance.settings.options import MeshMode

Document = dict[str, Any]


class Until(enum.StrEnum):
    #: Positive check: the expectation must match N consecutive times within the converge deadline.
    CONVERGES = "converges"
    #: Negative check: observed N times in a row, then that run holding until it spans the hold deadline.
    HOLDS = "holds"


class Dataplane(enum.StrEnum):
    SIDECAR = "sidecar"
    AMBIENT = "ambient"
    #: Outside the mesh: no sidecar, not enrolled in ambient.
    NONE = "none"


@dataclass(frozen=True)
class Applied:
    """One object a step applied; ``created`` None when unknown (a plan)."""

    ref: ObjectRef
    created: bool | None


@dataclass(frozen=True)
class WorkloadSpec:
    """A client workload of the scenarios, as its manifest in ``manifests/workloads/`` defines it."""

    namespace: str
    name: str
    manifest: str
    container: str
    service_account: str
    pod_labels: Mapping[str, str]
    #: False for a pod that opts out of the mesh (no sidecar, not enrolled).
    in_mesh: bool = True

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.pod_labels.items()))

    def dataplane(self, mode: MeshMode) -> Dataplane:
        if not self.in_mesh:
            return Dataplane.NONE
        return Dataplane.SIDECAR if mode is MeshMode.SIDECAR else Dataplane.AMBIENT


@dataclass(frozen=True)
class Workload:
    """A deployed (or planned) client: where curl runs."""

    spec: WorkloadSpec
    pod: str
    ip: str
    dataplane: Dataplane
    namespace_labels: Mapping[str, str]

    @property
    def ref(self) -> str:
        return self.spec.ref

    @property
    def namespace(self) -> str:
        return self.spec.namespace

    @property
    def container(self) -> str:
        return self.spec.container

    def record(self) -> dict[str, Any]:
        """Plan-format record of the workload."""
        return {
            "ref": self.ref,
            "namespace": self.spec.namespace,
            "name": self.spec.name,
            "labels": dict(self.spec.pod_labels),
            "serviceAccount": self.spec.service_account,
            "dataplane": self.dataplane.value,
            "ip": self.ip,
        }


class ProxyKind(enum.StrEnum):
    SIDECAR = "sidecar"
    EGRESS_GATEWAY = "egress-gateway"
    WAYPOINT = "waypoint"


@dataclass(frozen=True)
class LogSource:
    """Where one proxy writes its access log: the ``istio-proxy`` container of the pods behind a selector."""

    kind: ProxyKind
    #: namespace/name of the proxy's workload (the client workload for a sidecar).
    workload: str
    namespace: str
    selector: str
    container: str = "istio-proxy"

    def record(self) -> dict[str, str]:
        return {"kind": self.kind.value, "workload": self.workload}


@dataclass(frozen=True)
class LogLookup:
    """How a request's entry is found: by its token (default), by time window and SNI, or by window alone."""

    sni: str | None = None
    by_time: bool = False

    def record(self) -> dict[str, Any]:
        if self.sni:
            return {"lookup": "sni", "sni": self.sni}
        return {"lookup": "time"} if self.by_time else {}


@dataclass(frozen=True)
class GatewayPort:
    name: str
    port: int
    target_port: int
    protocol: str = "TCP"

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "port": self.port, "targetPort": self.target_port, "protocol": self.protocol}


@dataclass(frozen=True)
class EgressGatewayInfo:
    """The sidecar profile's egress gateway, as installed (or as the overlay would install it)."""

    namespace: str
    name: str
    service_account: str
    pod_labels: Mapping[str, str]
    ports: tuple[GatewayPort, ...]

    #: The label whose presence decides whether sidecars send mTLS to the gateway (auto-mTLS reads it).
    TLS_MODE_LABEL = "security.istio.io/tlsMode"

    @property
    def tls_mode_label(self) -> bool:
        return self.pod_labels.get(self.TLS_MODE_LABEL) == "istio"

    @property
    def selector(self) -> str:
        return "istio=" + self.pod_labels.get("istio", "egressgateway")

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    def log_source(self) -> LogSource:
        return LogSource(ProxyKind.EGRESS_GATEWAY, f"{self.namespace}/{self.name}", self.namespace, self.selector)

    def record(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "serviceAccount": self.service_account,
            "podLabels": dict(self.pod_labels),
            "ports": [p.record() for p in self.ports],
            "tlsModeLabel": self.tls_mode_label,
        }


@dataclass
class Observation:
    """What one documented request ended in after polling (or, in a plan, what it is expected to end in)."""

    probe_id: str
    client: Workload
    request: CurlRequest
    expectation: ResponseExpectation
    until: Until
    #: The last attempt's result; None in a plan.
    result: ProbeResult | None
    attempts: int = 0
    #: Seconds from the check's last configuration change to the first of the N matching probes.
    converged_after: float | None = None
    transcripts: list[str] = field(default_factory=list)

    @property
    def token(self) -> str:
        return self.result.token if self.result is not None else f"planned-{self.probe_id}"

    @property
    def started_at(self) -> datetime | None:
        return self.result.started_at if self.result is not None else None

    @property
    def outcome_text(self) -> str:
        return self.result.outcome.describe() if self.result is not None else f"planned: {self.expectation}"


#: Variables whose values are secret: never shown in a plan, a printout or a report.
SECRET_VARIABLES = frozenset({"TEST_CLIENT_TLS_KEY"})


def scenario_variables(
    *,
    ingress_ip: str,
    external_namespace: str,
    gateway_namespace: str,
    gateway_istio_label: str,
    client_crt: str,
    client_key: str,
    ca_crt: str,
) -> dict[str, str]:
    """The ``${NAME}`` values scenario manifests and documented commands may use."""
    return {
        "INGRESS_GATEWAY_IP": ingress_ip,
        "EXTERNAL_NAMESPACE": external_namespace,
        "EGRESS_GATEWAY_NAMESPACE": gateway_namespace,
        "EGRESS_GATEWAY_ISTIO_LABEL": gateway_istio_label,
        "TEST_CLIENT_TLS_CRT": client_crt,
        "TEST_CLIENT_TLS_KEY": client_key,
        "TEST_CA_CRT": ca_crt,
    }


class RuntimeBase:
    """What every runtime holds: the data-plane mode, the run's deadlines and the Istio release."""

    def __init__(self, mode: MeshMode, timeouts: Timeouts, istio_version: str) -> None:
        self._mode = mode
        self._timeouts = timeouts
        self._istio_version = istio_version

    @property
    def mode(self) -> MeshMode:
        return self._mode

    @property
    def timeouts(self) -> Timeouts:
        return self._timeouts

    @property
    def istio_version(self) -> str:
        return self._istio_version

    def placeholders(self) -> Mapping[str, str]:
        """Invented values -> how a printout names them (none: a real run shows what it saw)."""
        return {}

    def announce(self, check_id: str, action: Action) -> None:
        """A check recorded an action (a real run shows it in the Allure step it opened)."""

    def log_correlation(self, observation: Observation, source: LogSource) -> str | None:
        """How a TLS/TCP entry of ``observation`` in ``source`` was found (None: by its token, or planned)."""
        return None


class Runtime(Protocol):
    """What scenario code needs done. See the module docstring."""

    @property
    def planning(self) -> bool: ...

    @property
    def mode(self) -> MeshMode: ...

    @property
    def timeouts(self) -> Timeouts: ...

    @property
    def istio_version(self) -> str:
        """The Istio release the checks run against (installed, detected, or planned)."""
        ...

    def variables(self) -> Mapping[str, str]:
        """Values for the ``${NAME}`` placeholders of scenario manifests."""
        ...

    def placeholders(self) -> Mapping[str, str]:
        """Invented values (a plan's addresses) -> how a printout names them, e.g. ``<default/sleep pod IP>``."""
        ...

    def announce(self, check_id: str, action: Action) -> None:
        """A check recorded ``action`` in its log (a plan prints it)."""
        ...

    def log_correlation(self, observation: Observation, source: LogSource) -> str | None:
        """How a TLS/TCP access-log entry of the request was tied to it: "connection", or "time window (why)"."""
        ...

    def secret_variables(self) -> frozenset[str]:
        """Names of the variables that carry secret material (never shown in a log or report)."""
        ...

    def secret_values(self) -> list[str]:
        """The run's secret values, scrubbed from every file the harness writes (a plan's are invented)."""
        ...

    def apply(self, docs: Sequence[Document]) -> list[Applied]: ...

    def delete(self, refs: Sequence[ObjectRef]) -> None: ...

    def release(self, refs: Sequence[ObjectRef]) -> None: ...

    def outbound_policy(self, mode: OutboundMode) -> AbstractContextManager[None]:
        """Mesh-wide outboundTrafficPolicy set to ``mode`` inside the block, restored exactly after it."""
        ...

    def wait_condition(self, ref: ObjectRef, condition: str, status: str) -> None: ...

    def workload(self, spec: WorkloadSpec) -> Workload:
        """The client workload, deployed on first use in this data-plane mode."""
        ...

    def probe_client(self) -> Workload:
        """The external world's own curl pod, outside the mesh (sends positive-control requests)."""
        ...

    def await_sidecar(self, client: Workload) -> None:
        """Wait until the client's ready pods run Istio's ``istio-proxy`` sidecar; fail when they never do."""
        ...

    def egress_gateway(self) -> EgressGatewayInfo | None:
        """The egress gateway, or None when the mesh has none (an existing installation without one)."""
        ...

    def probe(
        self,
        probe_id: str,
        client: Workload,
        request: CurlRequest,
        expectation: ResponseExpectation,
        until: Until,
        changed_at: float | None,
    ) -> Observation: ...

    def await_log_entry(
        self, source: LogSource, observation: Observation, expectation: LogExpectation, lookup: LogLookup
    ) -> AccessLogEntry | None:
        """Poll the proxy's log until the observation's entry matches; the entry (None in a plan)."""
        ...

    def log_entries(self, source: LogSource, observation: Observation, lookup: LogLookup) -> list[AccessLogEntry]:
        """One read of the proxy's log: the observation's entries (none in a plan)."""
        ...
