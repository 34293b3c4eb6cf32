"""The live runtime's own decisions, against the loopback fake API server (no cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.expect import ExpectationFailed
from conformance.kube import Kube
from conformance.live import LiveRuntime, all_pods_have_sidecar, sidecar_by_pod
from conformance.planning import PlanRuntime
from conformance.settings import MeshMode
from conformance.timeouts import Timeouts
from conformance.workloads import FRONTEND_SLEEP
from tests.fake_apiserver import FakeApiServer

NS = FRONTEND_SLEEP.namespace
#: Waits that give up after a fraction of a second.
SHORT = Timeouts(rollout=0.3, poll_interval=0.05)


def pod(name: str, *, ready: bool = True, containers: tuple[str, ...] = ("sleep",),
        init: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": dict(FRONTEND_SLEEP.pod_labels)},
        "spec": {
            "containers": [{"name": c, "image": "x:1"} for c in containers],
            "initContainers": [{"image": "x:1", **c} for c in init],
        },
        "status": {"phase": "Running", "podIP": "10.244.0.7",
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }  # fmt: skip


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


@pytest.mark.parametrize(
    "pods, verdict", [({}, False), ({"a": True}, True), ({"a": True, "b": False}, False)]
)  # fmt: skip
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
