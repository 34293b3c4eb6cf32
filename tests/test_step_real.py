"""A check's configuration on a real API server: applied, then undone exactly.

The live runtime and the scenario API against a real kube-apiserver (tests/real_apiserver.py; skipped
without Go): what a step created is deleted, what existed before is left as it was (the harness's own
fields released), and the mesh config comes back byte for byte — also when the check fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance import MANIFESTS_DIR
from conformance.checks import REGISTRY_ONLY
from conformance.checks.step import Step
from conformance.core.timeouts import Timeouts
from conformance.engine.actions import CheckActions
from conformance.engine.check_run import CheckRun
from conformance.engine.runtime import EgressGatewayInfo, GatewayPort
from conformance.kube.api import Kube, ObjectRef
from conformance.runtimes.live import LiveRuntime
from conformance.settings.options import MeshMode
from conformance.spec.catalogue import lookup
from conformance.world.external import new_pki
from conformance.world.pki import RunPKI
from tests.real_apiserver import RealApiServer

APPLY = "application/apply-patch+yaml"
OTHER_MANAGER = "istio-operator"
TIMEOUTS = Timeouts(apply=5, discovery=15, crd_established=60, delete=60, converge=30)
ISTIO_CRDS = MANIFESTS_DIR / "schemas" / "istio-1.30.3" / "crd-all.gen.yaml"
MESH_TEXT = "accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n# a comment the harness must keep\n"
#: The Gateway of seed 003 as someone else (an operator) already has it on the cluster.
EXISTING_GATEWAY = {
    "apiVersion": "networking.istio.io/v1beta1",
    "kind": "Gateway",
    "metadata": {"name": "istio-egressgateway", "namespace": "istio-system", "labels": {"owner": "platform"}},
    "spec": {
        "selector": {"istio": "egressgateway"},
        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["aliyun.com"]}],
    },
}


class World:
    """The external world as the live runtime reads it: its PKI, address and namespace."""

    namespace = "external"

    def __init__(self, pki: RunPKI) -> None:
        self.pki = pki

    def ingress_ip(self) -> str:
        return "10.96.0.10"

    def create_client_secrets(self, namespace: str) -> ObjectRef:
        raise AssertionError("this check deploys no workload")


def apply_as(server: RealApiServer, path: str, body: dict[str, Any]) -> None:
    status, answer = server.request("PATCH", f"{path}?fieldManager={OTHER_MANAGER}", body, APPLY)
    assert status in (200, 201), answer


@pytest.fixture(scope="module")
def cluster(real_apiserver: RealApiServer) -> Iterator[tuple[RealApiServer, Kube]]:
    with Kube(real_apiserver.kubeconfig, timeouts=TIMEOUTS, poll_interval=0.2) as kube:
        crds = [doc for doc in yaml.load_all(ISTIO_CRDS.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) if doc]
        kube.apply(crds)
        kube.wait_crds_established([d["metadata"]["name"] for d in crds], TIMEOUTS.crd_established)
        apply_as(
            real_apiserver,
            "/api/v1/namespaces/istio-system",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}},
        )
        yield real_apiserver, kube


@pytest.fixture
def existing(cluster: tuple[RealApiServer, Kube]) -> Iterator[Kube]:
    """Istio's mesh ConfigMap and the seed's Gateway, as someone else installed them."""
    server, kube = cluster
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": "istio-system"},
        "data": {"mesh": MESH_TEXT},
    }
    apply_as(server, "/api/v1/namespaces/istio-system/configmaps/istio", configmap)
    apply_as(
        server,
        "/apis/networking.istio.io/v1beta1/namespaces/istio-system/gateways/istio-egressgateway",
        EXISTING_GATEWAY,
    )
    yield kube
    server.request("DELETE", "/apis/networking.istio.io/v1beta1/namespaces/istio-system/gateways/istio-egressgateway")


#: The egress gateway as upstream's default profile installs it (this API server runs no pods to find it by).
UPSTREAM_GATEWAY = EgressGatewayInfo(
    namespace="istio-system",
    name="istio-egressgateway",
    service_account="istio-egressgateway-service-account",
    pod_labels={"app": "istio-egressgateway", "istio": "egressgateway"},
    ports=(GatewayPort("http2", 80, 8080), GatewayPort("https", 443, 8443)),
)


class RuntimeWithGateway(LiveRuntime):
    def egress_gateway(self) -> EgressGatewayInfo | None:
        return UPSTREAM_GATEWAY


def new_step(kube: Kube, tmp_path: Path) -> Step:
    check = lookup("EGW-04")
    runtime = RuntimeWithGateway(kube, MeshMode.SIDECAR, TIMEOUTS, World(new_pki()), "1.30.3")  # type: ignore[arg-type]
    return Step(CheckRun(check, CheckActions(check.id, "x::y", "sidecar", check.profile.value, check.title)), runtime)


def state(kube: Kube) -> dict[str, Any]:
    service_entry = kube.get(ObjectRef("networking.istio.io/v1beta1", "ServiceEntry", "external-svc-http", "default"))
    virtual_service = kube.get(
        ObjectRef("networking.istio.io/v1beta1", "VirtualService", "direct-aliyun-through-egress-gateway", "default")
    )
    gateway = kube.get(ObjectRef("networking.istio.io/v1beta1", "Gateway", "istio-egressgateway", "istio-system"))
    mesh = kube.get(ObjectRef("v1", "ConfigMap", "istio", "istio-system"))
    assert gateway is not None and mesh is not None
    return {
        "service entry": service_entry is not None,
        "virtual service": virtual_service is not None,
        "gateway managers": sorted(m["manager"] for m in gateway["metadata"].get("managedFields", [])),
        "gateway": {"labels": gateway["metadata"].get("labels"), "spec": gateway["spec"]},
        "mesh": mesh["data"]["mesh"],
    }


def test_a_step_is_undone_exactly(existing: Kube, tmp_path: Path) -> None:
    kube = existing
    before = state(kube)
    step = new_step(kube, tmp_path)
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply("egw/service-entry.yaml", "egw/gateway.yaml", "egw/virtual-service.yaml")

    during = state(kube)
    assert during["service entry"] and during["virtual service"]
    assert "mode: REGISTRY_ONLY" in during["mesh"]
    assert during["gateway managers"] == sorted([OTHER_MANAGER, "egress-conformance"])

    step.cleanup()

    after = state(kube)
    assert not after["service entry"] and not after["virtual service"]
    # The Gateway existed before: it stays, with the operator's fields, and only the operator manages it.
    assert after == {**before, "service entry": False, "virtual service": False}
    assert after["mesh"] == MESH_TEXT


def test_a_failing_check_is_undone_too(existing: Kube, tmp_path: Path) -> None:
    kube = existing
    before = state(kube)
    step = new_step(kube, tmp_path)
    with pytest.raises(AssertionError, match="the check failed"):
        try:
            step.mesh(outbound=REGISTRY_ONLY)
            step.apply("egw/service-entry.yaml")
            raise AssertionError("the check failed")
        finally:
            step.cleanup()  # what the `step` fixture does whatever the check's outcome
    assert state(kube) == before
