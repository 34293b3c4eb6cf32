"""The runtime of a real run: scenario requests carried out on the cluster.

Manifests are server-side applied (``Kube.apply``: created vs changed recorded, conflicts named), waits and
probes poll through ``conformance.core.expect`` (positive checks N in a row; negative checks observed then
held), curl runs in the client pod through ``conformance.probe.curl``, and access-log entries are read from
the proxy pods and found by the probe's correlation token (``conformance.probe.accesslog``).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from conformance.core import evidence
from conformance.core.expect import ExpectationFailed, consistently, eventually
from conformance.core.timeouts import Timeouts
from conformance.engine.check_run import CheckRun
from conformance.engine.runtime import (
    SECRET_VARIABLES,
    Applied,
    Dataplane,
    EgressGatewayInfo,
    GatewayPort,
    LogLookup,
    LogSource,
    Observation,
    ProxyKind,
    RuntimeBase,
    Until,
    Workload,
    WorkloadSpec,
    scenario_variables,
)
from conformance.istio.components import EGRESS_GATEWAY, ISTIO_NAMESPACE
from conformance.istio.mesh_config import OutboundMode, outbound_traffic_policy
from conformance.kube.api import Kube, KubeError, ObjectRef
from conformance.probe.accesslog import AccessLogEntry, entries_for_probe, entries_in_window
from conformance.probe.curl import CurlRequest, PodTarget, Prober
from conformance.probe.log_matchers import LogExpectation
from conformance.probe.outcomes import ProbeError
from conformance.probe.responses import ProbeResult, ResponseExpectation
from conformance.runtimes import failure_evidence
from conformance.runtimes.failure_evidence import ClusterAccess, EvidenceCollection
from conformance.runtimes.live_diagnostics import DiagnosticsError, LiveDiagnostics
from conformance.settings.options import MeshMode
from conformance.world.external import ExternalWorld
from conformance.world.workloads import SIDECAR_CONTAINER, WorkloadDeployer, pod_has_sidecar, probe_client_spec

#: Positive and negative checks alike need this many matching probes in a row.
CONSECUTIVE = 3
#: Transcripts of the last attempts kept per probe (attached to the report on failure).
TRANSCRIPTS_KEPT = 5
EGRESS_GATEWAY_SELECTOR = "istio=egressgateway"
#: Errors that may happen while a pod or the API is briefly unavailable; polls carry on through them.
TOLERATED = (ProbeError, KubeError)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def first_of_final_run(attempts: Sequence[tuple[float, bool]], needed: int) -> float | None:
    """Start time of the first of the ``needed`` matching attempts that ended a poll."""
    if len(attempts) < needed or not all(matched for _, matched in attempts[-needed:]):
        return None
    return attempts[-needed][0]


class LiveRuntime(RuntimeBase):
    """Carries scenario requests out on a cluster, in one data-plane mode."""

    planning = False

    def __init__(
        self,
        kube: Kube,
        mode: MeshMode,
        timeouts: Timeouts,
        world: ExternalWorld,
        istio_version: str,
        diagnostics: LiveDiagnostics | None = None,
    ) -> None:
        super().__init__(mode, timeouts, istio_version)
        self._kube = kube
        self._world = world
        self._diagnostics = diagnostics
        #: Namespaces of the workloads this runtime deployed (their running images go into the report).
        self._workload_namespaces: set[str] = set()
        self._prober = Prober(kube, timeouts)
        self._deployer = WorkloadDeployer(kube, mode, timeouts, world.create_client_secrets)
        self._gateway: EgressGatewayInfo | None = None
        self._gateway_looked_up = False
        #: (probe's last token, proxy workload) -> how its TLS/TCP entry was found: "connection", or
        #: "time window (<why the connection's addresses could not tie it>)".
        self.correlations: dict[tuple[str, str], str] = {}

    # ------------------------------------------------------------------------------------ configuration

    def variables(self) -> Mapping[str, str]:
        pki = self._world.pki
        gateway = self.egress_gateway()
        return scenario_variables(
            ingress_ip=self._world.ingress_ip(),
            external_namespace=self._world.namespace,
            gateway_namespace=gateway.namespace if gateway else ISTIO_NAMESPACE,
            gateway_istio_label=(gateway.pod_labels.get("istio", "egressgateway") if gateway else "egressgateway"),
            client_crt=_b64(pki.client.certificate_pem()),
            client_key=_b64(pki.client.private_key_pem()),
            ca_crt=_b64(pki.ca_pem()),
        )

    def secret_variables(self) -> frozenset[str]:
        return SECRET_VARIABLES

    def secret_values(self) -> list[str]:
        variables = self.variables()
        return [variables[name] for name in SECRET_VARIABLES if name in variables]

    def apply(self, docs: Sequence[dict[str, Any]]) -> list[Applied]:
        return [Applied(item.ref, item.created) for item in self._kube.apply(list(docs))]

    def delete(self, refs: Sequence[ObjectRef]) -> None:
        self._kube.delete(list(refs), self._timeouts.delete)

    def release(self, refs: Sequence[ObjectRef]) -> None:
        self._kube.release(list(refs))

    def outbound_policy(self, mode: OutboundMode) -> AbstractContextManager[None]:
        return outbound_traffic_policy(self._kube, mode)

    def wait_condition(self, ref: ObjectRef, condition: str, status: str) -> None:
        self._kube.wait_condition(ref, condition, status, timeout=self._timeouts.converge, deadline_name="converge")

    # ---------------------------------------------------------------------------------------- workloads

    def workload(self, spec: WorkloadSpec) -> Workload:
        self._workload_namespaces.add(spec.namespace)
        return self._deployer.workload(spec)

    def remove_workloads(self) -> None:
        self._deployer.remove_all()

    def probe_client(self) -> Workload:
        pod = self._world.probe_pod()
        return Workload(probe_client_spec(self._world.probe_namespace), pod.name, pod.ip or "", Dataplane.NONE, {})

    def await_sidecar(self, client: Workload) -> None:
        spec = client.spec
        eventually(
            lambda: sidecar_by_pod(self._kube, spec.namespace, spec.selector),
            all_pods_have_sidecar,
            timeouts=self._timeouts,
            deadline="rollout",
            consecutive=1,
            description=f"{spec.ref}: ready pods and whether each runs the {SIDECAR_CONTAINER} sidecar",
            expected_description=f"at least one ready pod, every one with the {SIDECAR_CONTAINER} sidecar",
            tolerated=(KubeError,),
        )

    def egress_gateway(self) -> EgressGatewayInfo | None:
        if not self._gateway_looked_up:
            self._gateway = detect_egress_gateway(self._kube)
            self._gateway_looked_up = True
        return self._gateway

    # ------------------------------------------------------------------------------ evidence and facts

    def collect_failure_evidence(self, run: CheckRun, report_dir: Path) -> EvidenceCollection:
        """A failed check's evidence, read from the cluster before its resources are removed."""
        if self._diagnostics is None:
            collection = EvidenceCollection(
                run.check.id,
                self._mode.value,
                failure_evidence.check_directory(report_dir, run.check.id, self._mode.value),
            )
            collection.errors.append("no cluster access was given to the runtime: nothing collected")
            return collection
        return failure_evidence.collect(run, self._mode.value, self._diagnostics, report_dir)

    def cluster_access(self) -> ClusterAccess:
        if self._diagnostics is None:
            raise DiagnosticsError("no cluster access was given to the runtime")
        return self._diagnostics.access

    def observed_proxies(self) -> list[tuple[str, str]]:
        """(namespace, label selector) of the shared proxies this mode's checks route through: the egress
        gateway, when there is one."""
        gateway = self.egress_gateway()
        if gateway is None:
            return []
        return [(gateway.namespace, ",".join(f"{k}={v}" for k, v in sorted(gateway.pod_labels.items())))]

    def observed_namespaces(self) -> list[str]:
        """Where the pods this mode's checks involve run: Istio's, the clients', the external world's."""
        names = {ISTIO_NAMESPACE, self._world.namespace, self._world.probe_namespace, *self._workload_namespaces}
        return sorted(names)

    # ------------------------------------------------------------------------------------------- probes

    def probe(
        self,
        probe_id: str,
        client: Workload,
        request: CurlRequest,
        expectation: ResponseExpectation,
        until: Until,
        changed_at: float | None,
    ) -> Observation:
        target = PodTarget(client.namespace, pod=client.pod, container=client.container)
        attempts: list[tuple[float, bool]] = []
        transcripts: list[str] = []

        def attempt() -> ProbeResult:
            started = time.monotonic()
            result = self._prober.probe(target, request)
            attempts.append((started, expectation.matches(result)))
            transcripts.append(result.transcript())
            del transcripts[:-TRANSCRIPTS_KEPT]
            return result

        description = f"{probe_id} {client.ref}: {request.display()}"
        poll = eventually if until is Until.CONVERGES else consistently
        try:
            result = poll(
                attempt,
                expectation,
                timeouts=self._timeouts,
                consecutive=CONSECUTIVE,
                description=description,
                tolerated=TOLERATED,
            )
        except ExpectationFailed:
            for index, transcript in enumerate(transcripts):
                evidence.attach_text(transcript, f"{probe_id} attempt transcript {index + 1}")
            raise
        first = first_of_final_run(attempts, CONSECUTIVE)
        converged = (
            first - changed_at if first is not None and changed_at is not None and until is Until.CONVERGES else None
        )
        return Observation(
            probe_id,
            client,
            request,
            expectation,
            until,
            result,
            attempts=len(attempts),
            converged_after=max(converged, 0.0) if converged is not None else None,
            transcripts=transcripts,
        )

    # --------------------------------------------------------------------------------------- access log

    def _entries(
        self, source: LogSource, observation: Observation, lookup: LogLookup, searched: dict[str, str] | None = None
    ) -> list[AccessLogEntry]:
        result = observation.result
        if result is None:
            raise ProbeError(f"{observation.probe_id} has no result to look up in a log")
        texts = self._kube.logs(source.namespace, source.selector, source.container, result.started_at)
        if searched is not None:
            searched.clear()
            searched.update(texts)
        if not (lookup.by_time or lookup.sni):
            return [entry for text in texts.values() for entry in entries_for_probe(text, result)]
        # A TLS/TCP line carries no token: the entry is the one of this very connection when Envoy's
        # addresses tell (the client's port in its sidecar's log; that sidecar's upstream port in the
        # gateway's), else the nearest in the probe's time window.
        downstream, unknown_because = self._downstream_of(source, observation)
        found: list[AccessLogEntry] = []
        for text in texts.values():
            window = entries_in_window(text, result.started_at, result.finished_at, requested_server_name=lookup.sni)
            exact = [e for e in window if downstream is not None and e.downstream_remote_address == downstream]
            found += exact or window
        if downstream is not None and any(e.downstream_remote_address == downstream for e in found):
            how = "connection"
        else:
            why = unknown_because or f"no entry of the window has the connection's downstream address {downstream}"
            how = f"time window ({why})"
        # Keyed by the probe's last attempt (its token): probe IDs repeat from check to check.
        self.correlations[(result.token, source.workload)] = how
        return found

    def log_correlation(self, observation: Observation, source: LogSource) -> str | None:
        result = observation.result
        return self.correlations.get((result.token, source.workload)) if result is not None else None

    def _downstream_of(self, source: LogSource, observation: Observation) -> tuple[str | None, str | None]:
        """The downstream address ``source`` logged for this probe's connection, or why it cannot be known."""
        result = observation.result
        client = observation.client
        if result is None or result.client_address is None:
            return None, "curl's write-out gave no local address"
        if source.kind is ProxyKind.SIDECAR and source.workload == client.ref:
            return result.client_address, None
        if source.kind is not ProxyKind.EGRESS_GATEWAY or client.dataplane is not Dataplane.SIDECAR:
            return None, "only the client's own sidecar and the gateway behind it are tied by addresses"
        # The gateway sees the client's sidecar's outbound connection: that sidecar's log names its port.
        spec = client.spec
        texts = self._kube.logs(spec.namespace, spec.selector, SIDECAR_CONTAINER, result.started_at)
        for text in texts.values():
            for entry in entries_in_window(text, result.started_at, result.finished_at):
                if entry.downstream_remote_address == result.client_address and entry.upstream_local_address:
                    return entry.upstream_local_address, None
        return None, f"the client's sidecar logged no upstream address for its connection from {result.client_address}"

    def await_log_entry(
        self, source: LogSource, observation: Observation, expectation: LogExpectation, lookup: LogLookup
    ) -> AccessLogEntry | None:
        searched: dict[str, str] = {}

        def find() -> AccessLogEntry | None:
            entries = self._entries(source, observation, lookup, searched)
            return next((e for e in entries if expectation.matches(e)), entries[0] if entries else None)

        try:
            return eventually(
                find,
                expectation,
                timeouts=self._timeouts,
                deadline="access_log",
                consecutive=1,
                description=f"{source.kind.value} {source.workload} access log entry of {observation.probe_id}",
                tolerated=(KubeError,),
            )
        except ExpectationFailed:
            evidence.attach_text(
                searched_lines(searched),
                f"{source.kind.value} {source.workload} log lines searched for {observation.probe_id}",
            )
            raise

    def log_entries(self, source: LogSource, observation: Observation, lookup: LogLookup) -> list[AccessLogEntry]:
        return self._entries(source, observation, lookup)


def sidecar_by_pod(kube: Kube, namespace: str, selector: str) -> dict[str, bool]:
    """Ready pods behind ``selector``: pod name -> whether it runs the sidecar (container or native)."""
    found: dict[str, bool] = {}
    for info in kube.pods(namespace, selector):
        if info.ready:
            pod = kube.get(ObjectRef("v1", "Pod", info.name, namespace))
            if pod is not None:
                found[info.name] = pod_has_sidecar(pod)
    return found


def all_pods_have_sidecar(pods: Mapping[str, bool]) -> bool:
    return bool(pods) and all(pods.values())


#: Lines of each pod's log shown when an access-log entry was not found (the newest are kept).
SEARCHED_LINES_KEPT = 200


def searched_lines(texts: Mapping[str, str], kept: int = SEARCHED_LINES_KEPT) -> str:
    """The log lines a failed access-log lookup read, by pod, newest last."""
    if not texts:
        return "(no pod behind the proxy's selector returned a log)\n"
    parts = []
    for pod, text in sorted(texts.items()):
        lines = text.splitlines()
        cut = f" (the last {kept} of {len(lines)})" if len(lines) > kept else ""
        parts.append(f"# pod {pod}: {len(lines)} line(s) since the probe started{cut}")
        parts += lines[-kept:]
    return "\n".join(parts) + "\n"


def detect_egress_gateway(kube: Kube, namespace: str = ISTIO_NAMESPACE) -> EgressGatewayInfo | None:
    """The installed egress gateway (Service istio-system/istio-egressgateway and its ready pods)."""
    service = kube.get(ObjectRef("v1", "Service", EGRESS_GATEWAY, namespace))
    pods = [p for p in kube.pods(namespace, EGRESS_GATEWAY_SELECTOR) if p.ready and not p.terminating]
    if service is None or not pods:
        return None
    pod = kube.get(ObjectRef("v1", "Pod", pods[0].name, namespace)) or {}
    ports = tuple(
        GatewayPort(str(p.get("name", "")), int(p["port"]), _target_port(p), str(p.get("protocol", "TCP")))
        for p in (service.get("spec") or {}).get("ports") or []
    )
    return EgressGatewayInfo(
        namespace=namespace,
        name=EGRESS_GATEWAY,
        service_account=str((pod.get("spec") or {}).get("serviceAccountName") or "default"),
        pod_labels=dict(pods[0].labels),
        ports=ports,
    )


def _target_port(port: Mapping[str, Any]) -> int:
    target = port.get("targetPort", port["port"])
    return int(target) if isinstance(target, int) or str(target).isdigit() else int(port["port"])
