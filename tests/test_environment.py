"""The environment as observed: versions and nodes from the API server, image IDs from pod status, the CNI
from node agents — read with the real Kubernetes client from the loopback fake API server."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.core.timeouts import Timeouts
from conformance.kube.api import Kube
from conformance.report.environment import RunEnvironment, detect_cni, git_commit, running_images
from tests.fake_apiserver import DEFAULT_RESOURCES, FAKE_GIT_VERSION, PROXY_VARIABLES, FakeApiServer, write_kubeconfig
from tests.test_failure_evidence import EVENTS, NODES

DIGEST = "sha256:" + "b" * 64


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[FakeApiServer, Kube]]:
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    with (
        FakeApiServer(resources=[*DEFAULT_RESOURCES, EVENTS, NODES]) as server,
        Kube(write_kubeconfig(tmp_path / "kubeconfig", server.url)) as client,
    ):
        yield server, client


def pod(namespace: str, name: str, statuses: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
        "status": statuses,
    }


def daemonset(namespace: str, name: str) -> dict[str, Any]:
    labels = {"app": name}
    template = {"metadata": {"labels": labels}, "spec": {"containers": []}}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"selector": {"matchLabels": labels}, "template": template},
    }


def test_data_plane_facts_come_from_pod_status_and_node_agents(kube: tuple[FakeApiServer, Kube]) -> None:
    server, client = kube
    proxy = {
        "name": "istio-proxy",
        "image": "docker.io/istio/proxyv2:1.30.3",
        "imageID": f"docker.io/istio/proxyv2@{DIGEST}",
    }
    server.add_object(
        pod(
            "istio-system",
            "istiod-1",
            {
                "containerStatuses": [
                    {"name": "discovery", "image": "docker.io/istio/pilot:1.30.3", "imageID": "sha256:" + "c" * 64}
                ]
            },
        )
    )
    server.add_object(
        pod(
            "default",
            "sleep-1",
            {
                "initContainerStatuses": [proxy],
                "containerStatuses": [{"name": "sleep", "image": "curl", "imageID": ""}],
            },
        )
    )
    server.add_object(pod("elsewhere", "other", {"containerStatuses": [{**proxy, "name": "unrelated"}]}))
    server.add_object(daemonset("kube-system", "kindnet"))
    server.add_object(daemonset("istio-system", "istio-cni-node"))
    environment = RunEnvironment()
    environment.observe_data_plane(client, "ambient", ["istio-system", "default"])
    facts = environment.data_planes["ambient"]
    assert environment.errors == []
    assert facts.cni == {"plugins": ["kindnet"], "istioCni": True}
    records = [image.record() for image in facts.images]
    assert records == [
        {
            "image": "docker.io/istio/pilot:1.30.3",
            "imageID": "sha256:" + "c" * 64,
            "digest": "sha256:" + "c" * 64,
            "namespaces": ["istio-system"],
            "containers": ["discovery"],
        },
        # The sidecar is an init container (native sidecar); a container not started yet has no image ID.
        {
            "image": "docker.io/istio/proxyv2:1.30.3",
            "imageID": f"docker.io/istio/proxyv2@{DIGEST}",
            "digest": DIGEST,
            "namespaces": ["default"],
            "containers": ["istio-proxy"],
        },
    ]


def test_cluster_facts(kube: tuple[FakeApiServer, Kube]) -> None:
    server, client = kube
    server.add_object(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "kind-control-plane"},
            "status": {
                "nodeInfo": {
                    "kubeletVersion": "v1.35.0",
                    "osImage": "Debian GNU/Linux 12",
                    "containerRuntimeVersion": "containerd://2.1.1",
                    "architecture": "amd64",
                }
            },
        }
    )
    environment = RunEnvironment()
    environment.observe_cluster(client)
    assert environment.kubernetes_version == FAKE_GIT_VERSION
    assert environment.nodes == [
        {
            "name": "kind-control-plane",
            "kubeletVersion": "v1.35.0",
            "osImage": "Debian GNU/Linux 12",
            "containerRuntimeVersion": "containerd://2.1.1",
            "architecture": "amd64",
        }
    ]


def test_what_could_not_be_read_is_recorded(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Short deadlines: an unreachable server would otherwise be looked up again for the whole discovery deadline.
    timeouts = Timeouts(discovery=0.5, apply=0.5)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    with Kube(kubeconfig, request_timeout=2, timeouts=timeouts) as client:
        environment = RunEnvironment()
        environment.observe_cluster(client)
        environment.observe_data_plane(client, "sidecar", ["default"])
    assert environment.kubernetes_version is None and environment.data_planes["sidecar"].cni is None
    assert [e.split(":")[0] for e in environment.errors] == ["Kubernetes version", "nodes", "sidecar", "sidecar"]


def test_cni_and_images_from_plain_documents() -> None:
    assert detect_cni([{"metadata": {"name": "calico-node"}}, {"metadata": {"name": "unrelated"}}]) == {
        "plugins": ["calico"],
        "istioCni": False,
    }
    assert running_images([{"metadata": {}, "status": {}}]) == []


def test_git_commit_of_a_checkout_and_outside_one(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == (None, None)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("1")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], check=True
    )
    commit, dirty = git_commit(tmp_path)
    assert commit is not None and len(commit) == 40 and dirty is False
    (tmp_path / "f").write_text("2")
    assert git_commit(tmp_path) == (commit, True)
