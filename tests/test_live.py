"""The live runtime's own decisions, against the loopback fake API server (no cluster)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conformance.core.expect import ExpectationFailed
from conformance.core.timeouts import Timeouts
from conformance.engine.runtime import Dataplane, LogLookup, LogSource, ProxyKind
from conformance.kube.api import Kube
from conformance.runtimes.live import LiveRuntime, all_pods_have_sidecar, sidecar_by_pod
from conformance.runtimes.planning import PlanRuntime
from conformance.settings.options import MeshMode
from conformance.world.workloads import FRONTEND_SLEEP
from tests.fake_apiserver import FakeApiServer

NS = FRONTEND_SLEEP.namespace
#: Waits that give up after a fraction of a second.
SHORT = Timeouts(rollout=0.3, poll_interval=0.05)


def pod(
    name: str, *, ready: bool = True, containers: tuple[str, ...] = ("sleep",), init: tuple[dict[str, Any], ...] = ()
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": dict(FRONTEND_SLEEP.pod_labels)},
        "spec": {
            "containers": [{"name": c, "image": "x:1"} for c in containers],
            "initContainers": [{"image": "x:1", **c} for c in init],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.7",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


NATIVE_SIDECAR = {"name": "istio-proxy", "restartPolicy": "Always"}
#: An init container called istio-proxy that runs to completion is not a sidecar.
ONE_SHOT_INIT = {"name": "istio-proxy"}


class NoWorld:
    """The live runtime's external world, unused by the sidecar wait."""

    def create_client_secrets(self, namespace: str) -> None:
        raise AssertionError("not used")


@pytest.fixture
def kube(fake_kubeconfig: Path) -> Iterator[Kube]:
    client = Kube(fake_kubeconfig, poll_interval=0.01)
    yield client
    client.close()


def live(kube: Kube) -> LiveRuntime:
    return LiveRuntime(kube, MeshMode.SIDECAR, SHORT, NoWorld(), "1.30.3")  # type: ignore[arg-type]


def client_workload() -> Any:
    return PlanRuntime(MeshMode.SIDECAR, SHORT).workload(FRONTEND_SLEEP)


@pytest.mark.parametrize(
    "pods, expected",
    [
        ([pod("sleep-1", containers=("sleep", "istio-proxy"))], {"sleep-1": True}),
        ([pod("sleep-1", init=(NATIVE_SIDECAR,))], {"sleep-1": True}),
        ([pod("sleep-1", init=(ONE_SHOT_INIT,))], {"sleep-1": False}),
        ([pod("sleep-1"), pod("sleep-2", ready=False, init=(NATIVE_SIDECAR,))], {"sleep-1": False}),
    ],
    ids=["container", "native-sidecar", "init-container-only", "only-ready-pods-count"],
)
def test_sidecar_by_pod_reads_each_ready_pod(
    fake_apiserver: FakeApiServer, kube: Kube, pods: list[dict[str, Any]], expected: dict[str, bool]
) -> None:
    for item in pods:
        fake_apiserver.add_object(item)
    assert sidecar_by_pod(kube, NS, FRONTEND_SLEEP.selector) == expected


@pytest.mark.parametrize("pods, verdict", [({}, False), ({"a": True}, True), ({"a": True, "b": False}, False)])
def test_every_ready_pod_and_at_least_one_must_run_the_sidecar(pods: dict[str, bool], verdict: bool) -> None:
    assert all_pods_have_sidecar(pods) is verdict


def test_live_sidecar_wait_passes_for_a_native_sidecar(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(pod("sleep-1", init=(NATIVE_SIDECAR,)))
    live(kube).await_sidecar(client_workload())


def test_live_sidecar_wait_fails_on_the_rollout_deadline_without_one(fake_apiserver: FakeApiServer, kube: Kube) -> None:
    fake_apiserver.add_object(pod("sleep-1"))
    with pytest.raises(ExpectationFailed, match="rollout") as failure:
        live(kube).await_sidecar(client_workload())
    assert "sleep-1" in str(failure.value)


# --------------------------------------------------------------------------------------------------
# TLS/TCP access-log entries: tied to their request by the connection's addresses


STARTED = datetime(2026, 12, 7, 12, 9, 23, tzinfo=UTC)


class LogsOnly:
    """The one thing the log lookup asks of the cluster: container logs by (namespace, selector, container)."""

    def __init__(self, logs: dict[tuple[str, str], str]) -> None:
        self._logs = logs

    def logs(self, namespace: str, selector: str, container: str, since: datetime) -> dict[str, str]:
        text = self._logs.get((namespace, selector))
        return {"pod-0": text} if text else {}


def tcp_line(downstream: str, upstream_local: str, cluster: str, seconds: float) -> str:
    start = (STARTED + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    fields = {"downstream_remote_address": downstream, "upstream_local_address": upstream_local}
    return json.dumps({"start_time": start, **fields, "upstream_cluster": cluster, "response_code": 0})


def tls_observation(local_port: int | None, token: str = "t1") -> Any:
    info = {"local_ip": "10.244.0.11", "local_port": local_port} if local_port else {}
    address = f"10.244.0.11:{local_port}" if local_port else None
    window = {"started_at": STARTED, "finished_at": STARTED + timedelta(seconds=1)}
    result = SimpleNamespace(**window, curl_info=info, token=token, client_address=address)
    spec = SimpleNamespace(namespace="mytest", selector="app=sleep-a")
    client = SimpleNamespace(ref="mytest/sleep-a", dataplane=Dataplane.SIDECAR, spec=spec)
    return SimpleNamespace(probe_id="p3", result=result, client=client)


SIDECAR_LOG = LogSource(ProxyKind.SIDECAR, "mytest/sleep-a", "mytest", "app=sleep-a")
GATEWAY_LOG = LogSource(
    ProxyKind.EGRESS_GATEWAY, "istio-system/istio-egressgateway", "istio-system", "istio=egressgateway"
)
#: Two connections in the same second: sleep-a's own (port 48016) and another one of the same pod.
SIDECAR_TEXT = "\n".join(
    [
        tcp_line("10.244.0.11:41000", "10.244.0.11:39000", "outbound|444||gw", 0.2),
        tcp_line("10.244.0.11:48016", "10.244.0.11:39486", "outbound|444||gw", 0.4),
    ]
)
GATEWAY_TEXT = "\n".join(
    [
        tcp_line("10.244.0.11:39000", "10.244.0.5:51000", "outbound|443||other", 0.3),
        tcp_line("10.244.0.11:39486", "10.244.0.5:52000", "outbound|443||www.httpbin.org", 0.5),
    ]
)


def tls_runtime() -> LiveRuntime:
    kube = LogsOnly({("mytest", "app=sleep-a"): SIDECAR_TEXT, ("istio-system", "istio=egressgateway"): GATEWAY_TEXT})
    return LiveRuntime(kube, MeshMode.SIDECAR, SHORT, NoWorld(), "1.30.3")  # type: ignore[arg-type]


def test_a_tls_entry_is_the_one_of_the_connection_in_the_sidecar_and_the_gateway() -> None:
    runtime, observation = tls_runtime(), tls_observation(48016)
    (sidecar,) = runtime._entries(SIDECAR_LOG, observation, LogLookup(by_time=True))
    assert sidecar.downstream_remote_address == "10.244.0.11:48016"
    assert runtime.log_correlation(observation, SIDECAR_LOG) == "connection"
    (gateway,) = runtime._entries(GATEWAY_LOG, observation, LogLookup(by_time=True))
    assert gateway.upstream_cluster == "outbound|443||www.httpbin.org"
    assert runtime.log_correlation(observation, GATEWAY_LOG) == "connection"


def test_without_curls_local_address_the_window_is_used_and_the_report_says_why() -> None:
    runtime, observation = tls_runtime(), tls_observation(None)
    entries = runtime._entries(SIDECAR_LOG, observation, LogLookup(by_time=True))
    assert len(entries) == 2
    assert runtime.log_correlation(observation, SIDECAR_LOG) == "time window (curl's write-out gave no local address)"


def test_correlations_of_one_check_never_answer_for_another_with_the_same_probe_id() -> None:
    runtime = tls_runtime()
    runtime._entries(SIDECAR_LOG, tls_observation(48016, token="earlier"), LogLookup(by_time=True))
    assert runtime.log_correlation(tls_observation(48016, token="later"), SIDECAR_LOG) is None
