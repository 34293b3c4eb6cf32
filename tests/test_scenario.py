"""The scenario API: documented curl commands, configuration tracking and undo, adaptations, log absence."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from conformance.checks import REGISTRY_ONLY
from conformance.checks.clients import Client
from conformance.checks.curl_args import parse_curl
from conformance.checks.errors import ScenarioError
from conformance.checks.gateway_hop import ISTIO_MUTUAL, PLAINTEXT
from conformance.checks.gateways import EgressGateway, Waypoint
from conformance.checks.step import Step
from conformance.core.timeouts import DEFAULT_TIMEOUTS, Timeouts
from conformance.engine.actions import Action, CheckActions
from conformance.engine.check_run import CheckRun
from conformance.engine.runtime import (
    Applied,
    EgressGatewayInfo,
    LogLookup,
    LogSource,
    Observation,
    ProxyKind,
    Until,
    Workload,
    WorkloadSpec,
)
from conformance.harness.fixtures import egress_waypoint
from conformance.istio.mesh_config import OutboundMode
from conformance.kube.api import ObjectRef
from conformance.probe.accesslog import AccessLogEntry
from conformance.probe.curl import CurlRequest
from conformance.probe.log_matchers import LogExpectation
from conformance.probe.outcomes import Outcome, http
from conformance.probe.responses import Headers, ProbeResult, ResponseExpectation
from conformance.runtimes.planning import PlanRuntime, overlay_egress_gateway
from conformance.settings.options import MeshMode
from conformance.spec.catalogue import lookup
from conformance.spec.record_texts import GATEWAY_MTLS_ADAPTATION, GATEWAY_PLAINTEXT_ADAPTATION
from conformance.world.workloads import FRONTEND_SLEEP, SLEEP, SLEEP_A

VARIABLES = {"INGRESS_GATEWAY_IP": "10.96.0.9"}


# ------------------------------------------------------------------------------------------ curl words


@pytest.mark.parametrize(
    "words, method, url, headers",
    [
        (("-sI", "http://aliyun.com"), "HEAD", "http://aliyun.com", ()),
        (("-I", "-s", "http://aliyun.com"), "HEAD", "http://aliyun.com", ()),
        (
            ("--header", "host:test.com", "$INGRESS_GATEWAY_IP/status/418"),
            "GET",
            "10.96.0.9/status/418",
            (("host", "test.com"),),
        ),
        (
            ("-H", "Host: test.com", "${INGRESS_GATEWAY_IP}/status/200", "-I"),
            "HEAD",
            "10.96.0.9/status/200",
            (("host", "test.com"),),
        ),
        (
            ("-s", "-o", "/dev/null", "-w", "%{http_code}\\n", "http://www.httpbin.org"),
            "GET",
            "http://www.httpbin.org",
            (),
        ),
        (("-X", "post", "http://httpbin.org/post"), "POST", "http://httpbin.org/post", ()),
        (("-d", "x=1", "http://httpbin.org/post"), "POST", "http://httpbin.org/post", ()),
    ],
)
def test_documented_curl_commands_become_requests(
    words: tuple[str, ...], method: str, url: str, headers: tuple[tuple[str, str], ...]
) -> None:
    request = parse_curl(words, VARIABLES)
    assert (request.method, request.url, request.headers) == (method, url, headers)


@pytest.mark.parametrize(
    "words, message",
    [
        (("-k", "https://test.com"), "'-k' is not supported"),
        (("-L", "http://aliyun.com"), "'-L' is not supported"),
        (("--insecure", "https://test.com"), "'--insecure' is not supported"),
        (("-sI",), "no URL"),
        (("http://a", "http://b"), "two URLs"),
        (("-H", "no-colon", "http://a"), "lacks ':'"),
        (("-H",), "needs a value"),
        (("$NOT_SET/x",), "no value for $NOT_SET"),
    ],
)
def test_unsupported_or_broken_curl_words_are_refused(words: tuple[str, ...], message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("$", r"\$")):
        parse_curl(words, VARIABLES)


def test_client_certificate_options_are_kept() -> None:
    request = parse_curl(("--cacert", "/c/ca", "--cert", "/c/crt", "--key", "/c/key", "https://test.com"), {})
    assert (request.cacert, request.cert, request.key) == ("/c/ca", "/c/crt", "/c/key")


# ----------------------------------------------------------------------------------- recording runtime


class RecordingRuntime:
    """A runtime that remembers every request, answers as scripted, and never talks to a cluster."""

    planning = False

    def __init__(self, *, created: bool = True, gateway_labels: Mapping[str, str] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.announced: list[tuple[str, str]] = []
        self.created = created
        self.created_overrides: dict[str, bool] = {}
        self.entries: list[AccessLogEntry] = []
        self.log_sources: list[LogSource] = []
        base = overlay_egress_gateway()
        self.gateway = EgressGatewayInfo(
            base.namespace, base.name, base.service_account, dict(gateway_labels or base.pod_labels), base.ports
        )
        self.outcome = http(301)
        self.headers = Headers()
        self._variables = dict(PlanRuntime(MeshMode.SIDECAR, DEFAULT_TIMEOUTS).variables())

    @property
    def mode(self) -> MeshMode:
        return MeshMode.SIDECAR

    @property
    def timeouts(self) -> Timeouts:
        return DEFAULT_TIMEOUTS

    istio_version = "1.30.3"

    def placeholders(self) -> Mapping[str, str]:
        return {}

    def announce(self, check_id: str, action: Action) -> None:
        self.announced.append((check_id, action.type))

    def log_correlation(self, observation: Observation, source: LogSource) -> str | None:
        return None

    def variables(self) -> Mapping[str, str]:
        return self._variables

    def secret_variables(self) -> frozenset[str]:
        return frozenset()

    def secret_values(self) -> list[str]:
        return []

    def apply(self, docs: Sequence[dict[str, Any]]) -> list[Applied]:
        applied = []
        for doc in docs:
            ref = ObjectRef(doc["apiVersion"], doc["kind"], doc["metadata"]["name"], doc["metadata"].get("namespace"))
            applied.append(Applied(ref, self.created_overrides.get(ref.name, self.created)))
        self.calls.append(("apply", [a.ref for a in applied]))
        return applied

    def delete(self, refs: Sequence[ObjectRef]) -> None:
        self.calls.append(("delete", list(refs)))

    def release(self, refs: Sequence[ObjectRef]) -> None:
        self.calls.append(("release", list(refs)))

    @contextlib.contextmanager
    def outbound_policy(self, mode: OutboundMode) -> Iterator[None]:
        self.calls.append(("mesh", mode))
        try:
            yield
        finally:
            self.calls.append(("mesh restored", mode))

    def wait_condition(self, ref: ObjectRef, condition: str, status: str) -> None:
        self.calls.append(("wait", (ref, condition, status)))

    def workload(self, spec: WorkloadSpec) -> Workload:
        return PlanRuntime(MeshMode.SIDECAR, DEFAULT_TIMEOUTS).workload(spec)

    def probe_client(self) -> Workload:
        return PlanRuntime(MeshMode.SIDECAR, DEFAULT_TIMEOUTS).probe_client()

    def await_sidecar(self, client: Workload) -> None:
        self.calls.append(("sidecar", client.ref))

    def egress_gateway(self) -> EgressGatewayInfo | None:
        return self.gateway

    def probe(
        self,
        probe_id: str,
        client: Workload,
        request: CurlRequest,
        expectation: ResponseExpectation,
        until: Until,
        changed_at: float | None,
    ) -> Observation:
        self.calls.append(("probe", (client.ref, request, until)))
        now = datetime.now(UTC)
        outcome = http(204) if "log-control" in request.display() else self.outcome
        result = ProbeResult(
            outcome=outcome,
            status=outcome.status,
            headers=self.headers,
            body="",
            body_truncated=False,
            curl_exit_code=0,
            exec_exit_code=0,
            curl_error=None,
            stderr="",
            command=("curl",),
            display_command=request.display(),
            token=f"token-{probe_id}-0123",
            namespace=client.namespace,
            pod=client.pod,
            pod_ip=client.ip,
            started_at=now,
            finished_at=now,
        )
        if not expectation.matches(result):
            raise AssertionError(f"{probe_id}: {outcome} is not {expectation}")
        return Observation(probe_id, client, request, expectation, until, result)

    def await_log_entry(
        self, source: LogSource, observation: Observation, expectation: LogExpectation, lookup: LogLookup
    ) -> AccessLogEntry | None:
        self.calls.append(("log", (source.kind.value, observation.probe_id)))
        self.log_sources.append(source)
        return None

    def log_entries(self, source: LogSource, observation: Observation, lookup: LogLookup) -> list[AccessLogEntry]:
        self.calls.append(("log read", (source.kind.value, observation.probe_id)))
        return list(self.entries)


def new_step(runtime: RecordingRuntime, check_id: str = "EGW-04") -> Step:
    check = lookup(check_id)
    actions = CheckActions(check.id, "x::y", "sidecar", check.profile.value, check.title)
    return Step(CheckRun(check, actions), runtime)


def calls_of(runtime: RecordingRuntime, kind: str) -> list[Any]:
    return [payload for name, payload in runtime.calls if name == kind]


# --------------------------------------------------------------------------------- tracking and undo


def test_cleanup_deletes_what_was_created_and_releases_what_was_changed() -> None:
    runtime = RecordingRuntime()
    runtime.created_overrides = {"istio-egressgateway": False}  # an existing Gateway, changed by the check
    step = new_step(runtime)
    step.apply("egw/service-entry.yaml", "egw/gateway.yaml", "egw/virtual-service.yaml")
    step.cleanup()
    (deleted,) = calls_of(runtime, "delete")
    (released,) = calls_of(runtime, "release")
    assert [r.name for r in deleted] == ["external-svc-http", "direct-aliyun-through-egress-gateway"]
    assert [r.name for r in released] == ["istio-egressgateway"]


def test_an_object_deleted_by_the_check_is_not_deleted_again() -> None:
    runtime = RecordingRuntime()
    step = new_step(runtime)
    step.apply("egw/service-entry.yaml", "egw/gateway.yaml", "egw/virtual-service.yaml")
    step.delete("egw/virtual-service.yaml")
    step.cleanup()
    first, cleanup = calls_of(runtime, "delete")
    assert [r.name for r in first] == ["direct-aliyun-through-egress-gateway"]
    assert [r.name for r in cleanup] == ["external-svc-http", "istio-egressgateway"]


def test_an_object_created_then_reapplied_stays_created() -> None:
    runtime = RecordingRuntime()
    step = new_step(runtime)
    step.apply("egw/service-entry.yaml")
    runtime.created = False  # the second apply finds it
    step.apply("egw/service-entry.yaml")
    step.cleanup()
    assert [r.name for r in calls_of(runtime, "delete")[0]] == ["external-svc-http"]
    assert calls_of(runtime, "release") == []


def test_mesh_setting_is_restored_after_the_other_undo_steps_even_when_deletion_fails() -> None:
    runtime = RecordingRuntime()
    step = new_step(runtime)
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply("egw/service-entry.yaml")

    def failing_delete(refs: Sequence[ObjectRef]) -> None:
        raise RuntimeError("API server gone")

    runtime.delete = failing_delete  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="API server gone"):
        step.cleanup()
    assert runtime.calls[-1] == ("mesh restored", OutboundMode.REGISTRY_ONLY)
    step.cleanup()  # a second call does nothing
    assert runtime.calls[-1] == ("mesh restored", OutboundMode.REGISTRY_ONLY)


def test_a_manifest_failing_strict_validation_is_never_applied(tmp_path: Any, monkeypatch: Any) -> None:
    from conformance.core import manifests

    broken = tmp_path / "scenarios" / "broken.yaml"
    broken.parent.mkdir()
    broken.write_text(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x, namespace: default}\n"
        "spec: {hosts: [a.com], resolutoin: DNS}\n"
    )
    runtime = RecordingRuntime()
    monkeypatch.setattr(manifests, "MANIFESTS_DIR", tmp_path)
    with pytest.raises(ScenarioError, match="resolutoin"):
        new_step(runtime).apply("broken.yaml")
    assert calls_of(runtime, "apply") == []


def test_a_scenario_object_without_namespace_is_refused(tmp_path: Any, monkeypatch: Any) -> None:
    from conformance.core import manifests

    path = tmp_path / "scenarios" / "no-namespace.yaml"
    path.parent.mkdir()
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    runtime = RecordingRuntime()
    monkeypatch.setattr(manifests, "MANIFESTS_DIR", tmp_path)
    with pytest.raises(ScenarioError, match="has no namespace"):
        new_step(runtime).apply("no-namespace.yaml")


# ------------------------------------------------------------------------------------ the gateway hop


@pytest.mark.parametrize(
    "labelled, over, adaptation, manifest",
    [
        (False, PLAINTEXT, None, None),
        (True, PLAINTEXT, GATEWAY_PLAINTEXT_ADAPTATION, "gateway-plaintext.yaml"),
        (False, ISTIO_MUTUAL, GATEWAY_MTLS_ADAPTATION, "gateway-istio-mutual.yaml"),
        (True, ISTIO_MUTUAL, None, None),
    ],
)
def test_gateway_hop_adaptation_follows_the_gateway_pod_label(
    labelled: bool, over: Any, adaptation: str | None, manifest: str | None
) -> None:
    labels = {"app": "istio-egressgateway", "istio": "egressgateway"}
    if labelled:
        labels["security.istio.io/tlsMode"] = "istio"
    runtime = RecordingRuntime(gateway_labels=labels)
    step = new_step(runtime)
    gateway = EgressGateway(step, runtime.gateway)
    applied = step.sidecars_reach(gateway, over=over, namespace="default")
    if adaptation is None:
        assert applied is None and calls_of(runtime, "apply") == []
        return
    assert applied is not None and applied.reason == adaptation
    assert applied.manifests == (f"scenarios/harness/{manifest}",)
    (refs,) = calls_of(runtime, "apply")
    assert [(r.kind, r.namespace) for r in refs] == [("DestinationRule", "default")]
    record = step.run.actions.actions[-1].as_dict()
    assert record["adaptation"] == adaptation
    dr = record["resources"][0]
    assert dr["spec"]["host"] == "istio-egressgateway.istio-system.svc.cluster.local"
    assert dr["spec"]["trafficPolicy"]["tls"]["mode"] == ("DISABLE" if over is PLAINTEXT else "ISTIO_MUTUAL")


def test_istio_mutual_hop_with_listed_hosts_names_the_sni() -> None:
    runtime = RecordingRuntime()
    step = new_step(runtime, "ETP-01")
    step.sidecars_reach(
        EgressGateway(step, runtime.gateway), over=ISTIO_MUTUAL, namespace="mytest", sni="www.httpbin.org"
    )
    dr = step.run.actions.actions[-1].as_dict()["resources"][0]
    assert dr["metadata"]["namespace"] == "mytest"
    assert dr["spec"]["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL", "sni": "www.httpbin.org"}


# ------------------------------------------------------------------------------------ probes and logs


def test_a_denial_probe_gets_short_curl_limits_a_positive_one_keeps_its_own() -> None:
    runtime = RecordingRuntime()
    step = new_step(runtime)
    client = Client(step, runtime.workload(SLEEP))
    client.curl("-sI", "http://aliyun.com").converges_to(http(301))
    runtime.outcome = http(502)
    client.curl("-sI", "http://aliyun.com").is_denied(http(502))
    (_, positive, until_positive), (_, denied, until_denied) = calls_of(runtime, "probe")
    assert until_positive is Until.CONVERGES and positive.connect_timeout is None and positive.max_time is None
    assert until_denied is Until.HOLDS
    assert (denied.connect_timeout, denied.max_time) == (
        DEFAULT_TIMEOUTS.denied_connect,
        DEFAULT_TIMEOUTS.denied_request,
    )


def test_no_log_entry_is_checked_only_after_the_positive_control_shows_up() -> None:
    runtime = RecordingRuntime()
    step = new_step(runtime, "EGW-03")
    client = Client(step, runtime.workload(SLEEP))
    r = client.curl("-sI", "http://aliyun.com").converges_to(http(301))
    EgressGateway(step, runtime.gateway).no_log_for(r)
    order = [name for name, _ in runtime.calls if name in ("apply", "probe", "log", "log read")]
    assert order == ["probe", "apply", "probe", "log", "log read"]
    control = calls_of(runtime, "probe")[1]
    assert control[0].startswith("external") and "log-control.egress-conformance.invalid" in control[1].display()
    assert calls_of(runtime, "log read") == [("egress-gateway", "p1")]


def test_every_recorded_action_is_announced_to_the_runtime_once_in_order() -> None:
    """The plan printout is the runtime's: each verb records its action once and the runtime hears of it."""
    runtime = RecordingRuntime()
    step = new_step(runtime, "EGW-03")
    client = Client(step, runtime.workload(SLEEP))
    r = client.curl("-sI", "http://aliyun.com").converges_to(http(301))
    EgressGateway(step, runtime.gateway).no_log_for(r)
    step.cleanup()
    recorded = [(step.check.id, action.type) for action in step.run.actions.actions]
    assert runtime.announced == recorded
    assert [kind for _, kind in recorded] == ["probe", "apply", "probe", "log", "log", "delete"]


def test_an_entry_that_must_not_exist_fails_the_check() -> None:
    runtime = RecordingRuntime()
    runtime.entries = [AccessLogEntry(response_code=301, upstream_cluster="outbound|80||aliyun.com")]
    step = new_step(runtime, "EGW-03")
    r = Client(step, runtime.workload(SLEEP)).curl("-sI", "http://aliyun.com").converges_to(http(301))
    with pytest.raises(AssertionError, match="must not pass through it"):
        EgressGateway(step, runtime.gateway).no_log_for(r)


def test_a_sidecar_log_absence_without_a_control_is_refused() -> None:
    runtime = RecordingRuntime()
    step = new_step(runtime)
    client = Client(step, runtime.workload(SLEEP))
    r = client.curl("-sI", "http://aliyun.com").converges_to(http(301))
    with pytest.raises(ScenarioError, match="positive control"):
        client.sidecar.no_log_for(r)


def test_outcome_grammar_round_trips_through_the_plan_record() -> None:
    runtime = RecordingRuntime()
    step = new_step(runtime)
    runtime.outcome = Outcome.parse("http(403)")
    runtime.headers = Headers([("server", "envoy")])
    Client(step, runtime.workload(SLEEP)).curl("-sI", "http://www.aliyun.com").is_denied(
        http(403), headers={"server": "envoy"}
    )
    record = step.run.actions.actions[-1].as_dict()
    assert record["expect"] == {"outcome": "http(403)", "headerEquals": {"server": "envoy"}}
    assert record["until"] == "holds" and record["client"] == "default/sleep"


def test_sidecar_presence_is_asked_of_the_runtime_and_recorded_as_a_wait() -> None:
    runtime = RecordingRuntime()
    step = new_step(runtime, "NSD-01")
    Client(step, runtime.workload(FRONTEND_SLEEP)).has_sidecar()
    assert calls_of(runtime, "sidecar") == ["demo-frontend/sleep"]
    (action,) = [a.as_dict() for a in step.run.actions.actions]
    assert action["type"] == "wait"
    assert (action["client"], action["container"]) == ("demo-frontend/sleep", "istio-proxy")
    assert action["what"] == "demo-frontend/sleep pods run the istio-proxy sidecar"
    assert "demo-frontend/sleep" in step.run.actions.workloads


def test_an_adapted_manifest_is_applied_and_its_adaptation_recorded_for_the_report() -> None:
    runtime = RecordingRuntime()
    step = new_step(runtime, "ETP-05")
    Client(step, runtime.workload(SLEEP_A))  # the policy's source namespace is the client's
    adaptation = step.adapt("etp/authorization-policy.yaml", reason="selector of the installed gateway")
    (refs,) = calls_of(runtime, "apply")
    assert [(r.kind, r.namespace) for r in refs] == [("AuthorizationPolicy", "istio-system")]
    assert step.run.adaptations == [adaptation]
    assert adaptation.record() == {
        "reason": "selector of the installed gateway",
        "manifests": ["scenarios/etp/authorization-policy.yaml"],
    }
    assert step.run.actions.actions[-1].as_dict()["adaptation"] == "selector of the installed gateway"


# ---------------------------------------------------------------------------------------- the waypoint


def test_waypoint_log_is_read_from_the_gateways_pods_in_its_namespace() -> None:
    runtime = RecordingRuntime()
    step = new_step(runtime, "AMB-03")
    r = Client(step, runtime.workload(SLEEP)).curl("-sI", "http://aliyun.com").converges_to(http(301))
    Waypoint(step, "istio-egress", "waypoint").log_for(r).has(upstream_cluster="inbound-vip|80|http|aliyun.com")
    (source,) = runtime.log_sources
    assert source == LogSource(
        ProxyKind.WAYPOINT,
        "istio-egress/waypoint",
        "istio-egress",
        "gateway.networking.k8s.io/gateway-name=waypoint",
        "istio-proxy",
    )
    record = step.run.actions.actions[-1].as_dict()
    assert record["proxy"] == {"kind": "waypoint", "workload": "istio-egress/waypoint"}


def test_a_waypoint_log_absence_without_a_control_is_refused() -> None:
    runtime = RecordingRuntime()
    step = new_step(runtime, "AMB-03")
    r = Client(step, runtime.workload(SLEEP)).curl("-sI", "http://aliyun.com").converges_to(http(301))
    with pytest.raises(ScenarioError, match="positive control"):
        Waypoint(step, "istio-egress", "waypoint").no_log_for(r)


@pytest.mark.parametrize("mode", [MeshMode.SIDECAR, MeshMode.AMBIENT])
def test_egress_waypoint_exists_only_in_the_ambient_data_plane(mode: MeshMode) -> None:
    step = new_step(RecordingRuntime(), "AMB-03")
    if mode is MeshMode.AMBIENT:
        assert egress_waypoint(step, mode).source.workload == "istio-egress/waypoint"
        return
    with pytest.raises(pytest.skip.Exception, match="ambient data plane; this check runs on the sidecar"):
        egress_waypoint(step, mode)
