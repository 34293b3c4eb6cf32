"""Failure evidence read from a cluster: the live diagnostics over the real Kubernetes client against the
loopback fake API server, istioctl as a fake executable recording its arguments; bounded, hashed, never
raising."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conformance.core.timeouts import DEFAULT_TIMEOUTS, Timeouts
from conformance.engine.actions import CheckActions
from conformance.engine.check_run import CheckRun
from conformance.engine.runtime import Dataplane, Workload
from conformance.kube.api import Kube
from conformance.platform.binaries import BinaryError
from conformance.runtimes import failure_evidence
from conformance.runtimes.failure_evidence import ClusterAccess, bounded, collect, format_events
from conformance.runtimes.live_diagnostics import LiveDiagnostics
from conformance.runtimes.planning import overlay_egress_gateway
from conformance.spec.catalogue import lookup
from conformance.world.workloads import SLEEP
from tests.fake_apiserver import DEFAULT_RESOURCES, PROXY_VARIABLES, FakeApiServer, ResourceType, write_kubeconfig
from tests.fakes.executables import FakeBin, FakeExecutable

EVENTS = ResourceType("", "v1", "events", "Event", True)
NODES = ResourceType("", "v1", "nodes", "Node", False)


@pytest.fixture
def apiserver(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    with FakeApiServer(resources=[*DEFAULT_RESOURCES, EVENTS, NODES]) as server:
        yield server


@pytest.fixture
def kube(apiserver: FakeApiServer, tmp_path: Path) -> Iterator[Kube]:
    # A short discovery deadline: a test that stops the server must not wait out the default one.
    timeouts = Timeouts(discovery=1.0, apply=1.0)
    with Kube(
        write_kubeconfig(tmp_path / "kubeconfig", apiserver.url, context="fake"), "fake", timeouts=timeouts
    ) as client:
        yield client


def pod(namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": namespace, "name": name, "labels": labels},
        "spec": {"containers": [{"name": "istio-proxy", "image": "proxyv2"}]},
    }


@pytest.fixture
def cluster(apiserver: FakeApiServer) -> FakeApiServer:
    apiserver.add_object(pod("default", "sleep-abc", dict(SLEEP.pod_labels)))
    apiserver.set_pod_log("default", "sleep-abc", '{"response_code": 502, "route_name": "block_all"}\n', "istio-proxy")
    apiserver.add_object(pod("istio-system", "istio-egressgateway-1", {"istio": "egressgateway"}))
    apiserver.set_pod_log("istio-system", "istio-egressgateway-1", "gateway line\n", "istio-proxy")
    apiserver.add_object(pod("istio-system", "ztunnel-n1", {"app": "ztunnel"}))
    apiserver.set_pod_log("istio-system", "ztunnel-n1", "ztunnel line\n", "istio-proxy")
    for index, reason in enumerate(("Pulled", "BackOff")):
        apiserver.add_object(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "type": "Warning" if reason == "BackOff" else "Normal",
                "metadata": {"namespace": "default", "name": f"e{index}"},
                "reason": reason,
                "count": index + 1,
                "lastTimestamp": f"2026-11-30T08:0{5 - index}:00Z",
                "message": f"{reason} for\nsleep",
                "involvedObject": {"kind": "Pod", "name": "sleep-abc"},
            }
        )
    return apiserver


def check_run(check_id: str = "EGW-04") -> CheckRun:
    check = lookup(check_id)
    run = CheckRun(check, CheckActions(check.id, "x::y", "sidecar", check.profile.value, check.title))
    run.started_at = datetime.now(UTC)
    run.clients[SLEEP.ref] = Workload(SLEEP, "sleep-abc", "10.244.0.5", Dataplane.SIDECAR, {})
    source = overlay_egress_gateway().log_source()
    run.proxies[f"egress-gateway:{source.workload}"] = source
    run.actions.add("apply", "step", resources=[{"kind": "ServiceEntry", "metadata": {"namespace": "egress-x"}}])
    return run


def istioctl(fake_bin: FakeBin) -> FakeExecutable:
    fake = fake_bin("istioctl")
    fake.on("analyze", stdout="Warning [IST0134] (ServiceEntry egress-x/se)\n", exit_code=79)
    fake.on("proxy-config", stdout="NAME DOMAINS MATCH VIRTUAL SERVICE\n")
    return fake


def diagnostics(kube: Kube, binary: Path, tmp_path: Path, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> LiveDiagnostics:
    return LiveDiagnostics(kube, ClusterAccess(tmp_path / "kubeconfig", "fake"), lambda: binary, timeouts)


def test_evidence_of_a_sidecar_check(cluster: FakeApiServer, kube: Kube, fake_bin: FakeBin, tmp_path: Path) -> None:
    fake = istioctl(fake_bin)
    collection = collect(
        check_run(), "sidecar", diagnostics(kube, fake.path, tmp_path), tmp_path / "reports", attach=False
    )
    assert collection.errors == []
    names = sorted(Path(f.path).name for f in collection.files)
    assert names == sorted(
        [
            "actions.json",
            "client-default-sleep-sleep-abc-istio-proxy.log",
            "client-default-sleep-proxy-config-listeners.txt",
            "client-default-sleep-proxy-config-routes.txt",
            "client-default-sleep-proxy-config-clusters.txt",
            "egress-gateway-istio-system_istio-egressgateway-istio-egressgateway-1-istio-proxy.log",
            *(
                f"egress-gateway-istio-system_istio-egressgateway-istio-egressgateway-1-proxy-config-{k}.txt"
                for k in ("listeners", "routes", "clusters")
            ),
            "events-default.txt",
            "events-egress-x.txt",
            "events-istio-system.txt",
            "analyze-default.txt",
            "analyze-egress-x.txt",
            "analyze-istio-system.txt",
        ]
    )
    flags = ["--kubeconfig", str(tmp_path / "kubeconfig"), "--context", "fake"]
    argvs = fake.argvs()
    assert ["proxy-config", "listeners", "sleep-abc.default", *flags] in argvs
    assert ["proxy-config", "clusters", "istio-egressgateway-1.istio-system", *flags] in argvs
    assert ["analyze", "--namespace", "egress-x", "--color=false", *flags] in argvs
    for entry in collection.files:
        data = (tmp_path / "reports" / entry.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256 and len(data) == entry.bytes
    events = (collection.directory / "events-default.txt").read_text()
    assert events.splitlines()[1:] == [
        "2026-11-30T08:04:00Z Warning BackOff Pod/sleep-abc x2: BackOff for sleep",
        "2026-11-30T08:05:00Z Normal Pulled Pod/sleep-abc x1: Pulled for sleep",
    ]
    log = (collection.directory / "client-default-sleep-sleep-abc-istio-proxy.log").read_text()
    assert log.startswith("# kubectl -n default logs sleep-abc -c istio-proxy --since-time=")
    assert "block_all" in log


def test_ambient_evidence_reads_ztunnel_and_skips_the_client_proxy(
    cluster: FakeApiServer, kube: Kube, fake_bin: FakeBin, tmp_path: Path
) -> None:
    run = check_run()
    run.clients[SLEEP.ref] = Workload(SLEEP, "sleep-abc", "10.244.0.5", Dataplane.AMBIENT, {})
    run.proxies.clear()
    collection = collect(run, "ambient", diagnostics(kube, istioctl(fake_bin).path, tmp_path), tmp_path, attach=False)
    names = {Path(f.path).name for f in collection.files}
    assert "ztunnel-ztunnel-n1-istio-proxy.log" in names
    assert not [n for n in names if n.startswith("client-")]


def test_missing_istioctl_is_recorded_and_the_rest_is_collected(
    cluster: FakeApiServer, kube: Kube, tmp_path: Path
) -> None:
    def unavailable() -> Path:
        raise BinaryError("no pinned istioctl download for this platform")

    live = LiveDiagnostics(kube, ClusterAccess(tmp_path / "kubeconfig", None), unavailable, DEFAULT_TIMEOUTS)
    collection = collect(check_run(), "sidecar", live, tmp_path, attach=False)
    assert {Path(f.path).name for f in collection.files} >= {"actions.json", "events-default.txt"}
    istioctl_errors = [e for e in collection.errors if "istioctl is not available" in e]
    assert len(istioctl_errors) == 3 + 3 + 3  # client and gateway proxy-config, analyze of three namespaces


def test_a_hanging_istioctl_is_cut_at_the_diagnostics_deadline(
    cluster: FakeApiServer, kube: Kube, fake_bin: FakeBin, tmp_path: Path
) -> None:
    fake = fake_bin("istioctl")
    fake.on("analyze", delay=30)
    run = check_run()
    run.clients.clear()
    run.proxies.clear()
    short = Timeouts(diagnostics=0.5)
    collection = collect(run, "sidecar", diagnostics(kube, fake.path, tmp_path, short), tmp_path, attach=False)
    assert any("did not finish within 0.5s (deadline diagnostics" in e for e in collection.errors)


def test_an_api_failure_is_recorded_not_raised(cluster: FakeApiServer, kube: Kube, tmp_path: Path) -> None:
    cluster.stop()
    collection = collect(
        check_run(), "sidecar", diagnostics(kube, Path("/nonexistent/istioctl"), tmp_path), tmp_path, attach=False
    )
    assert [Path(f.path).name for f in collection.files] == ["actions.json"]
    assert any(e.startswith("client default/sleep proxy log: ") and "not reachable" in e for e in collection.errors), (
        collection.errors
    )


def test_the_evidence_budget_stops_further_files(
    cluster: FakeApiServer, kube: Kube, fake_bin: FakeBin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(failure_evidence, "MAX_CHECK_BYTES", 1000)
    collection = collect(
        check_run(), "sidecar", diagnostics(kube, istioctl(fake_bin).path, tmp_path), tmp_path, attach=False
    )
    assert collection.total_bytes <= 1000
    assert any("evidence budget of 1000 bytes is used up" in e for e in collection.errors)


def test_bounded_keeps_the_newest_log_lines_and_the_start_of_command_output() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    tail, cut = bounded(text, 200)
    assert cut and tail.decode().endswith("line 999\n") and len(tail) <= 200
    assert tail.decode().splitlines()[1].startswith("line ")  # starts on a whole line
    head, cut = bounded(text, 200, keep="head")
    assert cut and head.decode().startswith("line 0\n") and len(head) <= 200
    assert bounded("short", 200) == (b"short", False)


def test_events_keep_the_most_recent() -> None:
    events = [{"lastTimestamp": f"2026-11-30T08:{i // 60:02d}:{i % 60:02d}Z", "reason": f"r{i}"} for i in range(400)]
    lines = format_events(events).splitlines()
    assert lines[0] == "# 400 event(s), the last 300 shown"
    assert lines[1].startswith("2026-11-30T08:01:40Z") and lines[-1].startswith("2026-11-30T08:06:39Z")


@pytest.mark.parametrize("limit", [0, 10, 56, 60, 100])
@pytest.mark.parametrize("keep", ["tail", "head"])
def test_bounded_never_exceeds_its_limit(limit: int, keep: str) -> None:
    data, cut = bounded("é" + "x" * 500, limit, keep=keep)
    assert cut and len(data) <= limit
    data.decode("utf-8")  # never a broken character


class _World:
    """The little of the external world a LiveRuntime reads when it is built."""

    namespace = "external"
    probe_namespace = "external-probe"

    def create_client_secrets(self, namespace: str) -> None:
        return None


def test_a_missing_access_log_entry_attaches_the_lines_searched(
    cluster: FakeApiServer, kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conformance.core import evidence
    from conformance.core.expect import ExpectationFailed
    from conformance.engine.runtime import LogLookup, Observation, Until
    from conformance.probe.curl import CurlRequest
    from conformance.probe.log_matchers import LogExpectation
    from conformance.probe.outcomes import http
    from conformance.probe.responses import Headers, ProbeResult, ResponseExpectation
    from conformance.runtimes.live import LiveRuntime
    from conformance.settings.options import MeshMode

    attached: list[tuple[str, str]] = []
    monkeypatch.setattr(evidence, "attach_text", lambda text, name: attached.append((name, text)))
    live = LiveRuntime(kube, MeshMode.SIDECAR, Timeouts(access_log=0.3, poll_interval=0.05), _World(), "1.30.3")  # type: ignore[arg-type]
    now = datetime.now(UTC)
    result = ProbeResult(
        outcome=http(502),
        status=502,
        headers=Headers(),
        body="",
        body_truncated=False,
        curl_exit_code=0,
        exec_exit_code=0,
        curl_error=None,
        stderr="",
        command=("curl",),
        display_command="curl -sI http://aliyun.com",
        token="0123456789abcdef",
        namespace="default",
        pod="sleep-abc",
        pod_ip="10.244.0.5",
        started_at=now,
        finished_at=now,
    )
    request = CurlRequest(url="http://aliyun.com", method="HEAD")
    observation = Observation(
        "p1",
        Workload(SLEEP, "sleep-abc", "10.244.0.5", Dataplane.SIDECAR, {}),
        request,
        ResponseExpectation(http(502)),
        Until.HOLDS,
        result,
    )
    source = overlay_egress_gateway().log_source()
    with pytest.raises(ExpectationFailed):
        live.await_log_entry(source, observation, LogExpectation({"response_code": 502}), LogLookup())
    ((name, text),) = attached
    assert name == "egress-gateway istio-system/istio-egressgateway log lines searched for p1"
    assert text == "# pod istio-egressgateway-1: 1 line(s) since the probe started\ngateway line\n"
