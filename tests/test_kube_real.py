"""conformance.kube.api against a real kube-apiserver (with etcd and the controller manager): what the API
server does with what the harness sends. Needs Go (see tests/real_apiserver.py); skipped without it."""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance import MANIFESTS_DIR
from conformance.core.timeouts import Timeouts
from conformance.kube.api import (
    Kube,
    KubeApiError,
    KubeConflictError,
    KubeError,
    ObjectRef,
)
from tests.real_apiserver import RealApiServer

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
#: Field manager of objects "someone else" made: a user, istioctl, a vendor's controller.
OTHER_MANAGER = "cluster-operator"
TIMEOUTS = Timeouts(apply=3, discovery=15, crd_established=30, delete=60)
GATEWAY_API_BUNDLE = MANIFESTS_DIR / "gateway-api" / "v1.5.1" / "standard-install.yaml"
ISTIO_CRDS = MANIFESTS_DIR / "schemas" / "istio-1.30.3" / "crd-all.gen.yaml"

_names = itertools.count(1)


@pytest.fixture(scope="module")
def kube(real_apiserver: RealApiServer) -> Iterator[Kube]:
    with Kube(real_apiserver.kubeconfig, timeouts=TIMEOUTS, poll_interval=0.2) as client:
        yield client


@pytest.fixture
def namespace(real_apiserver: RealApiServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace made by someone else for this test (so the harness never counts it as created)."""
    name = f"t{next(_names)}-{request.node.name[5:30].replace('_', '-').strip('-')}".lower()
    status, body = real_apiserver.request(
        "PATCH",
        f"/api/v1/namespaces/{name}?fieldManager={OTHER_MANAGER}",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"team": "test"}}},
        APPLY,
    )
    assert status == 201, body
    yield name
    real_apiserver.request("DELETE", f"/api/v1/namespaces/{name}")


def configmap(name: str, namespace: str | None = None, **data: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def apply_as(server: RealApiServer, manager: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = server.request("PATCH", f"{path}?fieldManager={manager}", body, APPLY)
    assert status in (200, 201), answer
    assert isinstance(answer, dict)
    return answer


def bundle(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


@pytest.fixture(scope="module")
def gateway_api(kube: Kube) -> None:
    """Gateway API CRDs, unless a newer bundle is served already (never downgraded)."""
    if kube.get(ObjectRef("apiextensions.k8s.io/v1", "CustomResourceDefinition", "gateways.gateway.networking.k8s.io")):
        return
    kube.apply(bundle(GATEWAY_API_BUNDLE))


@pytest.fixture(scope="module")
def istio_crds(kube: Kube) -> None:
    if kube.get(ObjectRef("apiextensions.k8s.io/v1", "CustomResourceDefinition", "serviceentries.networking.istio.io")):
        return
    kube.apply(bundle(ISTIO_CRDS))


# ---- apply: created or changed ----------------------------------------------------------------------------


def test_apply_creates_and_says_so(kube: Kube, namespace: str) -> None:
    (applied,) = kube.apply([configmap("settings", a="1")], default_namespace=namespace)

    assert applied.ref == ObjectRef("v1", "ConfigMap", "settings", namespace)
    assert applied.created
    assert applied.object["data"] == {"a": "1"}
    (entry,) = applied.object["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("egress-conformance", "Apply")


def test_applying_again_what_only_the_harness_manages_still_counts_as_created(kube: Kube, namespace: str) -> None:
    # A leftover of an earlier run: cleanup must still delete it.
    kube.apply([configmap("leftover", a="1")], default_namespace=namespace)
    (again,) = kube.apply([configmap("leftover", a="2")], default_namespace=namespace)
    assert again.created
    assert again.object["data"] == {"a": "2"}


def test_an_object_someone_else_made_is_changed_not_created(
    kube: Kube, namespace: str, real_apiserver: RealApiServer
) -> None:
    apply_as(
        real_apiserver, OTHER_MANAGER, f"/api/v1/namespaces/{namespace}/configmaps/shared", configmap("shared", a="1")
    )

    (applied,) = kube.apply([configmap("shared", a="1", b="mine")], default_namespace=namespace)

    assert not applied.created
    assert applied.object["data"] == {"a": "1", "b": "mine"}


def test_a_namespace_someone_else_made_is_not_created(kube: Kube, namespace: str) -> None:
    (applied,) = kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}])
    assert applied.ref == ObjectRef("v1", "Namespace", namespace)
    assert not applied.created


def test_system_namespaces_are_never_counted_as_created(kube: Kube) -> None:
    (applied,) = kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}])
    assert not applied.created


def test_a_controller_writing_the_status_does_not_make_an_object_someone_elses(
    kube: Kube, namespace: str, real_apiserver: RealApiServer
) -> None:
    # The deployment controller writes the status of a Deployment the harness applied in an earlier run.
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]},
            },
        },
    }
    kube.apply([deployment], default_namespace=namespace)
    kube.wait_rollout("Deployment", namespace, "web", timeout=30)
    current = kube.get(ObjectRef("apps/v1", "Deployment", "web", namespace))
    assert current is not None
    assert {e["manager"] for e in current["metadata"]["managedFields"]} == {
        "egress-conformance",
        "kube-controller-manager",
    }

    (again,) = kube.apply([deployment], default_namespace=namespace)

    assert again.created


def test_dry_run_validates_without_persisting(kube: Kube, namespace: str) -> None:
    (applied,) = kube.apply([configmap("draft", a="1")], default_namespace=namespace, dry_run=True)
    assert applied.created
    assert kube.get(ObjectRef("v1", "ConfigMap", "draft", namespace)) is None


# ---- apply: what the server refuses ------------------------------------------------------------------------


def test_unknown_field_is_the_schema_500_and_never_retried(kube: Kube, namespace: str) -> None:
    started = time.monotonic()
    with pytest.raises(KubeApiError) as caught:
        kube.apply([{**configmap("typo"), "datas": {"a": "1"}}], default_namespace=namespace)

    assert time.monotonic() - started < 2  # the apply deadline (3 s) was not spent retrying
    error = caught.value
    assert error.status == 500 and error.schema_error and not error.transient
    assert "apply ConfigMap" in str(error)
    assert ".datas: field not declared in schema" in str(error)


def test_wrong_type_is_the_schema_500_too(kube: Kube, namespace: str) -> None:
    with pytest.raises(KubeApiError, match="failed to create typed patch object") as caught:
        kube.apply([{**configmap("typed"), "data": {"a": 1}}], default_namespace=namespace)
    assert caught.value.status == 500


def test_gateway_api_cel_rule_is_a_422_with_the_rule_s_message(kube: Kube, namespace: str, gateway_api: None) -> None:
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "bad"},
        "spec": {
            "gatewayClassName": "istio",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "tls": {"mode": "Terminate"}}],
        },
    }
    with pytest.raises(KubeApiError) as caught:
        kube.apply([gateway], default_namespace=namespace)
    assert caught.value.status == 422
    assert "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']" in str(caught.value)


def test_istio_enum_violation_is_a_422(kube: Kube, namespace: str, istio_crds: None) -> None:
    rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "bad-tls"},
        "spec": {"host": "example.com", "trafficPolicy": {"tls": {"mode": "SIMPLEST"}}},
    }
    with pytest.raises(KubeApiError) as caught:
        kube.apply([rule], default_namespace=namespace)
    assert caught.value.status == 422
    assert "SIMPLEST" in str(caught.value)


def test_apply_into_a_missing_namespace_is_404_and_not_retried(kube: Kube) -> None:
    started = time.monotonic()
    with pytest.raises(KubeApiError) as caught:
        kube.apply([configmap("orphan", "no-such-namespace", a="1")])
    assert time.monotonic() - started < 2
    assert caught.value.not_found
    assert 'namespaces "no-such-namespace" not found' in str(caught.value)


def test_conflict_names_the_owner_and_the_field_and_takes_nothing(
    kube: Kube, namespace: str, real_apiserver: RealApiServer
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/owned"
    apply_as(real_apiserver, OTHER_MANAGER, path, configmap("owned", mode="strict"))

    with pytest.raises(KubeConflictError) as caught:
        kube.apply([configmap("owned", mode="permissive", extra="x")], default_namespace=namespace)

    error = caught.value
    assert error.status == 409 and not error.transient
    assert error.managers == (OTHER_MANAGER,)
    assert f'conflict with "{OTHER_MANAGER}"' in str(error)
    assert ".data.mode" in str(error)
    _, current = real_apiserver.request("GET", path)
    assert current["data"] == {"mode": "strict"}  # nothing applied, nothing forced


def test_the_harness_field_manager_is_the_one_given(real_apiserver: RealApiServer, namespace: str) -> None:
    with Kube(real_apiserver.kubeconfig, field_manager="egress-conformance-ci", timeouts=TIMEOUTS) as other:
        (applied,) = other.apply([configmap("managed", a="1")], default_namespace=namespace)
    assert [e["manager"] for e in applied.object["metadata"]["managedFields"]] == ["egress-conformance-ci"]


# ---- release -----------------------------------------------------------------------------------------------


def test_release_removes_only_what_the_harness_set(kube: Kube, namespace: str) -> None:
    ref = ObjectRef("v1", "Namespace", namespace)
    labelled = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {"istio-injection": "enabled"}},
    }
    (applied,) = kube.apply([labelled])
    assert not applied.created
    assert applied.object["metadata"]["labels"]["istio-injection"] == "enabled"

    kube.release([ref])

    current = kube.get(ref)
    assert current is not None
    labels = current["metadata"]["labels"]
    assert "istio-injection" not in labels
    assert labels["team"] == "test"  # the owner's label stays
    assert all(e["manager"] != "egress-conformance" for e in current["metadata"].get("managedFields") or [])


def test_release_keeps_a_value_the_owner_shares(kube: Kube, namespace: str, real_apiserver: RealApiServer) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/shared"
    apply_as(real_apiserver, OTHER_MANAGER, path, configmap("shared", a="1"))
    kube.apply([configmap("shared", a="1", b="2")], default_namespace=namespace)

    kube.release([ObjectRef("v1", "ConfigMap", "shared", namespace)])

    _, current = real_apiserver.request("GET", path)
    assert current["data"] == {"a": "1"}


def test_release_of_a_missing_object_creates_nothing(kube: Kube, namespace: str) -> None:
    ref = ObjectRef("v1", "ConfigMap", "never-there", namespace)
    kube.release([ref, ObjectRef("example.com/v1", "Unserved", "x", namespace)])
    assert kube.get(ref) is None


# ---- namespaces: lifecycle ---------------------------------------------------------------------------------


def test_namespace_deletion_completes_through_the_controller(kube: Kube) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lifecycle-a", "labels": {"owner": "harness"}}}
    applied = kube.apply([ns, configmap("inside", "lifecycle-a", a="1")])
    assert [a.created for a in applied] == [True, True]

    kube.delete([a.ref for a in applied], timeout=60)

    assert kube.get(ObjectRef("v1", "Namespace", "lifecycle-a")) is None


def test_applying_into_a_terminating_namespace_waits_for_it_to_go_then_recreates_it(
    kube: Kube, real_apiserver: RealApiServer
) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lifecycle-b", "labels": {"owner": "harness"}}}
    first = kube.apply([ns, configmap("inside", "lifecycle-b", a="1")])
    kube.delete([first[0].ref], timeout=60, wait=False)
    terminating = kube.get(first[0].ref)
    assert terminating is not None and terminating["status"]["phase"] == "Terminating"

    with Kube(real_apiserver.kubeconfig, timeouts=Timeouts(apply=60), poll_interval=0.2) as patient:
        again = patient.apply([ns, configmap("inside", "lifecycle-b", a="2")])

    assert [a.created for a in again] == [True, True]
    assert again[0].object["metadata"]["uid"] != first[0].object["metadata"]["uid"]
    assert "deletionTimestamp" not in again[0].object["metadata"]
    kube.delete([again[0].ref], timeout=60, wait=False)


def test_creating_content_in_a_terminating_namespace_is_retried_then_reported(
    kube: Kube, real_apiserver: RealApiServer
) -> None:
    # A finalizer the test owns keeps the namespace Terminating for as long as the test wants.
    apply_as(
        real_apiserver,
        OTHER_MANAGER,
        "/api/v1/namespaces/lifecycle-c",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lifecycle-c"}},
    )
    held = configmap("held", "lifecycle-c")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    apply_as(real_apiserver, OTHER_MANAGER, "/api/v1/namespaces/lifecycle-c/configmaps/held", held)
    real_apiserver.request("DELETE", "/api/v1/namespaces/lifecycle-c")
    try:
        started = time.monotonic()
        with pytest.raises(KubeApiError) as caught:
            kube.apply([configmap("late", "lifecycle-c", a="1")])
        elapsed = time.monotonic() - started
        error = caught.value
        assert error.status == 403 and error.namespace_terminating and error.transient
        assert "unable to create new content in namespace lifecycle-c because it is being terminated" in str(error)
        assert "within the apply deadline of 3s" in str(error)
        assert 3 <= elapsed < 7
    finally:
        real_apiserver.request(
            "PATCH", "/api/v1/namespaces/lifecycle-c/configmaps/held", {"metadata": {"finalizers": None}}, MERGE
        )


# ---- delete and its wait -----------------------------------------------------------------------------------


def test_delete_waits_until_gone_and_missing_objects_are_fine(kube: Kube, namespace: str) -> None:
    applied = kube.apply([configmap("a", a="1"), configmap("b", b="2")], default_namespace=namespace)
    refs = [a.ref for a in applied]
    kube.delete(
        [
            *refs,
            ObjectRef("v1", "ConfigMap", "never", namespace),
            ObjectRef("example.com/v1", "Unserved", "x", namespace),
        ],
        timeout=30,
    )
    assert [kube.get(ref) for ref in refs] == [None, None]


def test_delete_wait_times_out_naming_what_is_still_there(
    kube: Kube, namespace: str, real_apiserver: RealApiServer
) -> None:
    held = configmap("held", namespace)
    held["metadata"]["finalizers"] = ["example.com/hold"]
    (applied,) = kube.apply([held])
    try:
        started = time.monotonic()
        with pytest.raises(KubeError, match=rf"delete deadline of 2s.*ConfigMap {namespace}/held still exists"):
            kube.delete([applied.ref], timeout=2)
        assert 2 <= time.monotonic() - started < 4
    finally:
        kube.merge_patch(applied.ref, {"metadata": {"finalizers": None}})
    kube.delete([applied.ref], timeout=30)


# ---- CRDs and discovery ------------------------------------------------------------------------------------


def widget_crd(group: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }


def test_a_crd_and_its_custom_resource_in_one_apply(kube: Kube, namespace: str) -> None:
    widget = {"apiVersion": "one.example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}

    applied = kube.apply([widget_crd("one.example.com"), widget], default_namespace=namespace)

    assert applied[1].ref == ObjectRef("one.example.com/v1", "Widget", "w1", namespace)
    assert applied[1].object["spec"] == {"size": 3}


def test_a_kind_nobody_serves_fails_after_the_discovery_deadline(real_apiserver: RealApiServer, namespace: str) -> None:
    with Kube(real_apiserver.kubeconfig, timeouts=Timeouts(discovery=1.5), poll_interval=0.3) as kube:
        started = time.monotonic()
        with pytest.raises(KubeError, match=r"Gizmo \(none.example.com/v1\) is not served.*discovery deadline"):
            kube.apply([{"apiVersion": "none.example.com/v1", "kind": "Gizmo", "metadata": {"name": "g"}}], namespace)
        assert 1.5 <= time.monotonic() - started < 5


def test_wait_crds_established(kube: Kube) -> None:
    kube.apply([widget_crd("two.example.com")])
    kube.wait_crds_established(["widgets.two.example.com"], timeout=30)
    with pytest.raises(KubeError, match=r"crd_established deadline of 1s.*missing.example.com: not found"):
        kube.wait_crds_established(["widgets.two.example.com", "missing.example.com"], timeout=1)


# ---- conditions --------------------------------------------------------------------------------------------


def write_status(server: RealApiServer, path: str, status: dict[str, Any]) -> None:
    code, answer = server.request("PATCH", f"{path}/status", {"status": status}, MERGE)
    assert code == 200, answer


def test_a_new_gateway_waits_for_its_controller(kube: Kube, namespace: str, gateway_api: None) -> None:
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "egress"},
        "spec": {"gatewayClassName": "istio", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
    }
    kube.apply([gateway], default_namespace=namespace)
    with pytest.raises(
        KubeError, match=r"gateway_programmed deadline of 1s.*Programmed=Unknown \(Pending: Waiting for controller\)"
    ):
        kube.wait_gateway_programmed(namespace, "egress", timeout=1)


def test_wait_condition_honours_the_generation(
    kube: Kube, namespace: str, gateway_api: None, real_apiserver: RealApiServer
) -> None:
    gateway: dict[str, Any] = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "waypoint"},
        "spec": {
            "gatewayClassName": "istio-waypoint",
            "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
        },
    }
    (applied,) = kube.apply([gateway], default_namespace=namespace)
    path = f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/gateways/waypoint"
    programmed = {
        "type": "Programmed",
        "status": "True",
        "reason": "Programmed",
        "message": "ready",
        "observedGeneration": 1,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    write_status(real_apiserver, path, {"conditions": [programmed]})

    obj = kube.wait_condition(applied.ref, "Programmed", timeout=5, deadline_name="gateway_programmed")
    assert obj["metadata"]["generation"] == 1

    # A spec change: the old Programmed=True (generation 1) no longer counts.
    gateway["spec"]["listeners"][0]["port"] = 15009
    kube.apply([gateway], default_namespace=namespace)
    with pytest.raises(KubeError, match=r"gateway_programmed deadline of 1s.*observed generation 1, current 2"):
        kube.wait_gateway_programmed(namespace, "waypoint", timeout=1)


def test_wait_condition_on_an_istio_status(
    kube: Kube, namespace: str, istio_crds: None, real_apiserver: RealApiServer
) -> None:
    entry = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "httpbin", "labels": {"istio.io/use-waypoint": "egress"}},
        "spec": {
            "hosts": ["httpbin.org"],
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            "resolution": "DNS",
        },
    }
    (applied,) = kube.apply([entry], default_namespace=namespace)
    path = f"/apis/networking.istio.io/v1/namespaces/{namespace}/serviceentries/httpbin"
    bound = {
        "type": "istio.io/WaypointBound",
        "status": "True",
        "reason": "WaypointAccepted",
        "message": "bound to egress",
    }
    write_status(real_apiserver, path, {"conditions": [bound], "observedGeneration": "1"})

    obj = kube.wait_condition(applied.ref, "istio.io/WaypointBound", timeout=5, deadline_name="converge")
    assert obj["status"]["conditions"][0]["reason"] == "WaypointAccepted"
    with pytest.raises(KubeError, match=r"converge deadline of 1s.*istio.io/WaypointBound=True"):
        kube.wait_condition(applied.ref, "istio.io/WaypointBound", "False", timeout=1, deadline_name="converge")


# ---- rollouts ----------------------------------------------------------------------------------------------


def deployment(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]},
            },
        },
    }


def test_wait_rollout_converges_when_the_controller_catches_up(kube: Kube, namespace: str) -> None:
    kube.apply([deployment("idle", 0)], default_namespace=namespace)
    kube.wait_rollout("deployment", namespace, "idle", timeout=30)


def test_wait_rollout_times_out_with_the_last_state(kube: Kube, namespace: str) -> None:
    # No scheduler and no kubelet here: the pod never becomes available.
    kube.apply([deployment("stuck", 1)], default_namespace=namespace)
    with pytest.raises(
        KubeError, match=r"rollout deadline of 2s.*0 of 1 updated replicas available|rollout deadline of 2s.*replicas"
    ):
        kube.wait_rollout("Deployment", namespace, "stuck", timeout=2)


# ---- merge patch, pods --------------------------------------------------------------------------------------


def test_merge_patch_under_the_harness_field_manager(kube: Kube, namespace: str, real_apiserver: RealApiServer) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/coredns"
    apply_as(real_apiserver, OTHER_MANAGER, path, configmap("coredns", Corefile=".:53 {}", other="x"))

    updated = kube.merge_patch(
        ObjectRef("v1", "ConfigMap", "coredns", namespace), {"data": {"other": None, "Corefile": ".:53 {\n}"}}
    )

    assert updated["data"] == {"Corefile": ".:53 {\n}"}
    managers = {(e["manager"], e["operation"]) for e in updated["metadata"]["managedFields"]}
    assert ("egress-conformance", "Update") in managers


def test_merge_patch_of_a_missing_object_is_404(kube: Kube, namespace: str) -> None:
    with pytest.raises(KubeApiError) as caught:
        kube.merge_patch(ObjectRef("v1", "ConfigMap", "absent", namespace), {"data": {"a": "1"}})
    assert caught.value.not_found


def test_a_terminating_pod_is_never_chosen(kube: Kube, namespace: str, real_apiserver: RealApiServer) -> None:
    def pod(name: str) -> dict[str, Any]:
        # Bound to a node that does not exist: the pod stays, and its deletion waits for a kubelet forever.
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "client"}},
            "spec": {"nodeName": "ghost-node", "containers": [{"name": "app", "image": "curl"}]},
        }

    kube.apply([pod("client-old"), pod("client-new")], default_namespace=namespace)
    status, _ = real_apiserver.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/client-old")
    assert status == 200

    assert [p.name for p in kube.pods(namespace, "app=client")] == ["client-new"]
    old = kube.pod(namespace, "client-old")
    assert old is not None and old.terminating
    new = kube.pod(namespace, "client-new")
    assert new is not None and not new.terminating
    assert kube.pod(namespace, "nobody") is None


def test_exec_into_a_pod_without_a_node_is_refused_with_the_server_s_message(kube: Kube, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pending"},
        "spec": {"containers": [{"name": "app", "image": "curl"}]},
    }
    kube.apply([pod], default_namespace=namespace)
    with pytest.raises(KubeError, match=r"HTTP 400: pod pending does not have a host assigned"):
        kube.exec(namespace, "pending", ["true"], "app", timeout=10)


# ---- reachability, version ---------------------------------------------------------------------------------


def test_server_version_and_reachability(kube: Kube) -> None:
    kube.check_reachable()
    assert kube.server_version() == "v1.35.4"


# ---- what the fake API server scripts, as the real server says it ------------------------------------------


def test_webhook_without_endpoints_is_the_500_the_fake_scripts(
    kube: Kube, real_apiserver: RealApiServer, namespace: str
) -> None:
    from tests.fake_apiserver import webhook_unavailable_status

    assert real_apiserver.pki is not None
    ca = base64.b64encode(real_apiserver.pki.ca.read_bytes()).decode()  # never used: no endpoint to call
    apply_as(
        real_apiserver,
        OTHER_MANAGER,
        "/api/v1/namespaces/istio-system",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}},
    )
    apply_as(
        real_apiserver,
        OTHER_MANAGER,
        "/api/v1/namespaces/istio-system/services/istiod",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "istiod"},
            "spec": {
                "ports": [{"name": "https-webhook", "port": 443, "targetPort": 15017}],
                "selector": {"app": "istiod"},
            },
        },
    )
    webhook_path = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/istio-validator-test"
    apply_as(
        real_apiserver,
        OTHER_MANAGER,
        webhook_path,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "istio-validator-test"},
            "webhooks": [
                {
                    "name": "rev.validation.istio.io",
                    "clientConfig": {
                        "service": {"name": "istiod", "namespace": "istio-system", "path": "/validate", "port": 443},
                        "caBundle": ca,
                    },
                    "rules": [
                        {
                            "operations": ["CREATE", "UPDATE"],
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "resources": ["configmaps"],
                        }
                    ],
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                }
            ],
        },
    )
    try:
        deadline = time.monotonic() + 10
        while True:  # the webhook configuration reaches the admission plugin's informer within moments
            status, body = real_apiserver.request(
                "PATCH", f"/api/v1/namespaces/{namespace}/configmaps/probe?fieldManager=x", configmap("probe"), APPLY
            )
            if status == 500 or time.monotonic() > deadline:
                break
            real_apiserver.request("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/probe")
            time.sleep(0.2)
        assert status == 500
        assert body == webhook_unavailable_status("rev.validation.istio.io", "istiod", "istio-system", "/validate")

        with pytest.raises(KubeApiError) as caught:
            kube.apply([configmap("blocked", a="1")], default_namespace=namespace)
        assert caught.value.transient
        assert 'no endpoints available for service "istiod"' in str(caught.value)
        assert "within the apply deadline of 3s" in str(caught.value)
    finally:
        real_apiserver.request("DELETE", webhook_path)


def test_the_fake_s_canned_statuses_are_the_real_server_s(
    kube: Kube, namespace: str, real_apiserver: RealApiServer
) -> None:
    from tests.fake_apiserver import (
        apply_without_field_manager_status,
        namespace_not_found_status,
        schema_error_status,
    )

    status, body = real_apiserver.request(
        "PATCH", f"/api/v1/namespaces/{namespace}/configmaps/c", configmap("c"), APPLY
    )
    assert (status, body) == (422, apply_without_field_manager_status())
    status, body = real_apiserver.request(
        "PATCH", "/api/v1/namespaces/absent/configmaps/c?fieldManager=x", configmap("c"), APPLY
    )
    assert (status, body) == (404, namespace_not_found_status("absent"))
    status, body = real_apiserver.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/configmaps/c?fieldManager=x",
        {**configmap("c", namespace), "datas": {}},
        APPLY,
    )
    assert (status, body) == (500, schema_error_status(f"{namespace}/c", "/v1, Kind=ConfigMap", ".datas"))
