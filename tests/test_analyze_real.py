"""`istioctl analyze` of every planned step, against a real API server: every analyzer runs.

In file mode istioctl leaves out the analyzers that need Pods, Services, Namespaces or Secrets (gateway
ports, destination hosts, subsets to pods, conflicting gateways, injection). Here each check's state is
real: a fresh kube-apiserver (tests/real_apiserver.py) holds Istio's CRDs, the mesh config and the egress
gateway as the sidecar overlay installs them, the check's client pods, and — applied step by step, as a
real run applies them — the check's resources; after every step the routing oracle's own istioctl (the
same code as istioctl of the plan's Istio branch) analyzes all namespaces. An error fails the test with
istioctl's message; warnings are listed in the test's output.

Needs Go for both the control plane and the oracle: skipped without it, unless EGRESS_REQUIRE_REAL_APISERVER
or EGRESS_REQUIRE_ORACLE make that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance import MANIFESTS_DIR
from conformance.core import manifests
from conformance.core.timeouts import Timeouts
from conformance.engine.oracle_build import Branch, OracleTimeouts, build_oracle, run_istioctl
from conformance.kube.api import Kube, ObjectRef
from conformance.runtimes.planning import overlay_egress_gateway
from conformance.spec.catalogue import CATALOGUE, lookup
from tests.plan_run import PlanRun
from tests.real_apiserver import RealApiServer

pytestmark = pytest.mark.skipif(
    shutil.which("go") is None and os.environ.get("EGRESS_REQUIRE_ORACLE") != "1",
    reason="istioctl comes from the routing oracle, which needs Go (set EGRESS_REQUIRE_ORACLE=1 to fail instead)",
)

TIMEOUTS = Timeouts(apply=5, discovery=15, crd_established=60, delete=60)
ISTIO_CRDS = MANIFESTS_DIR / "schemas" / "istio-1.30.3" / "crd-all.gen.yaml"
GATEWAY_API_CRDS = MANIFESTS_DIR / "gateway-api" / "v1.5.1" / "standard-install.yaml"
#: Stand-in for a redacted Secret value: valid base64, as the real data is.
SECRET_VALUE = "UExBTk5FRA=="


def bundle(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) if doc]


def pod(namespace: str, name: str, labels: dict[str, str], service_account: str, sidecar: bool) -> dict[str, Any]:
    containers = [{"name": "app", "image": "docker.io/curlimages/curl:8.16.0"}]
    if sidecar:
        containers.append({"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.30.3"})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "serviceAccountName": service_account,
            "automountServiceAccountToken": False,
            "containers": containers,
        },
    }


def service_account(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def egress_gateway() -> list[dict[str, Any]]:
    """The sidecar overlay's egress gateway: its Service, service account and one pod (never scheduled)."""
    gateway = overlay_egress_gateway()
    labels = dict(gateway.pod_labels)
    ports = [
        {"name": p.name, "port": p.port, "targetPort": p.target_port, "protocol": p.protocol} for p in gateway.ports
    ]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": gateway.name, "namespace": gateway.namespace, "labels": labels},
        "spec": {"selector": labels, "ports": ports},
    }
    gateway_pod = pod(gateway.namespace, f"{gateway.name}-0", labels, gateway.service_account, sidecar=False)
    gateway_pod["spec"]["containers"] = [
        {
            "name": "istio-proxy",
            "image": "docker.io/istio/proxyv2:1.30.3",
            "ports": [{"containerPort": p.target_port} for p in gateway.ports],
        }
    ]
    return [service_account(gateway.namespace, gateway.service_account), service, gateway_pod]


def mesh_configmap() -> dict[str, Any]:
    (overlay,) = manifests.render("istio/sidecar.yaml")
    mesh = yaml.safe_dump(overlay["spec"]["meshConfig"], sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": "istio-system"},
        "data": {"mesh": mesh},
    }


def as_applied(resource: dict[str, Any]) -> dict[str, Any]:
    if resource.get("kind") == "Secret":
        return {**resource, "data": {key: SECRET_VALUE for key in resource.get("data") or {}}}
    return resource


@pytest.fixture(scope="module")
def istioctl() -> Path:
    if shutil.which("go") is None:
        pytest.fail("EGRESS_REQUIRE_ORACLE=1 but `go` is not on PATH")
    cache = Path(os.environ.get("EGRESS_ORACLE_CACHE_DIR", "~/.cache/egress-conformance")).expanduser()
    return build_oracle(Branch("1.30"), cache_dir=cache, timeouts=OracleTimeouts())


@pytest.fixture(scope="module")
def cluster(real_apiserver: RealApiServer) -> Iterator[tuple[RealApiServer, Kube]]:
    """A fresh control plane with Istio 1.30.3's CRDs, the mesh config and the egress gateway."""
    control_plane = RealApiServer(real_apiserver.binaries, controller_manager=False)
    with control_plane as server, Kube(server.kubeconfig, timeouts=TIMEOUTS) as kube:
        crds = [*bundle(GATEWAY_API_CRDS), *bundle(ISTIO_CRDS)]
        kube.apply(crds)
        names = [d["metadata"]["name"] for d in crds if d["kind"] == "CustomResourceDefinition"]
        kube.wait_crds_established(names, TIMEOUTS.crd_established)
        kube.apply([namespace("istio-system"), mesh_configmap(), *egress_gateway()])
        yield server, kube


def analyze(binary: Path, kubeconfig: Path) -> list[dict[str, str]]:
    result = run_istioctl(
        binary,
        [
            "analyze",
            "--kubeconfig",
            str(kubeconfig),
            "--all-namespaces",
            "-o",
            "json",
            "--output-threshold",
            "Warning",
            "--failure-threshold",
            "Error",
        ],
        timeouts=OracleTimeouts(),
    )
    assert result.exit_code in (0, 79), f"istioctl analyze exited {result.exit_code}: {result.stderr}"
    text = result.stdout.strip()
    messages: list[dict[str, str]] = json.loads(text) if text.startswith("[") else []
    return messages


def test_every_planned_step_passes_istioctl_analyze_against_the_api_server(
    cluster: tuple[RealApiServer, Kube], istioctl: Path, catalogue_plan: PlanRun
) -> None:
    server, kube = cluster
    errors: list[str] = []
    warnings: set[str] = set()
    declared_seen: set[tuple[str, str]] = set()
    for check in catalogue_plan.plan["checks"]:
        declared = {code for code, _ in lookup(check["id"]).analyzer_errors}
        # The check's namespaces and client pods, as the harness deploys them before the check runs.
        base = [namespace(ns["name"], ns["labels"]) for ns in check["namespaces"]]
        for workload in check["workloads"]:
            base.append(namespace(workload["namespace"]))
            base.append(service_account(workload["namespace"], workload["serviceAccount"]))
            base.append(
                pod(
                    workload["namespace"],
                    f"{workload['name']}-0",
                    workload["labels"],
                    workload["serviceAccount"],
                    sidecar=workload["dataplane"] == "sidecar",
                )
            )
        kube.apply([doc for doc in base if doc["kind"] == "Namespace"])
        kube.apply([doc for doc in base if doc["kind"] != "Namespace"])
        applied: list[ObjectRef] = []
        for action in check["actions"]:
            if action["type"] != "apply":
                continue
            kube.apply([as_applied(r) for r in action["resources"] if r["kind"] == "Namespace"])
            applied += [a.ref for a in kube.apply([as_applied(r) for r in action["resources"]])]
            for message in analyze(istioctl, server.kubeconfig):
                line = (
                    f"{check['id']} ({check['mode']}) after {action['sources']}: {message['code']} "
                    f"{message.get('origin', '')}: {message['message']}"
                )
                if message["level"] == "Error" and message["code"] in declared:
                    declared_seen.add((check["id"], message["code"]))
                elif message["level"] == "Error":
                    errors.append(line)
                else:
                    warnings.add(f"{message['code']} {message.get('origin', '')}: {message['message']}")
        kube.delete([r for r in applied if r.kind != "Namespace"], TIMEOUTS.delete)
        kube.delete(
            [
                ObjectRef("v1", "Pod", d["metadata"]["name"], d["metadata"]["namespace"])
                for d in base
                if d["kind"] == "Pod"
            ],
            TIMEOUTS.delete,
        )
    print("istioctl analyze warnings (code, resource):\n  " + "\n  ".join(sorted(warnings)))
    assert not errors, "istioctl analyze found errors:\n" + "\n".join(errors)
    planned = {c["id"] for c in catalogue_plan.plan["checks"]}
    declared_all = {(c.id, code) for c in CATALOGUE.values() if c.id in planned for code, _ in c.analyzer_errors}
    assert declared_all == declared_seen, "a pitfall's declared analyzer error no longer shows"
