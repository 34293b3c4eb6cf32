"""conformance.kube.status: conditions and rollouts judged from an object's JSON, as kubectl judges them."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.kube.errors import KubeError
from conformance.kube.status import (
    condition_met,
    crd_established,
    describe_condition,
    gateway_programmed,
    rollout_progress,
)

NS = "egress-test"


def deployment(
    name: str = "web",
    *,
    replicas: int = 2,
    generation: int = 2,
    observed: int = 2,
    updated: int = 2,
    total: int = 2,
    available: int = 2,
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "availableReplicas": available,
        },
    }


@pytest.mark.parametrize(
    ("kind", "obj", "done"),
    [
        ("Deployment", deployment(), True),
        ("Deployment", deployment(observed=1), False),
        ("Deployment", deployment(updated=1), False),
        ("Deployment", deployment(total=3), False),  # an old replica still terminating
        ("Deployment", deployment(available=1), False),
        (
            "DaemonSet",
            {
                "metadata": {"name": "d", "generation": 1},
                "spec": {},
                "status": {
                    "observedGeneration": 1,
                    "desiredNumberScheduled": 3,
                    "updatedNumberScheduled": 3,
                    "numberAvailable": 3,
                },
            },
            True,
        ),
        (
            "DaemonSet",
            {
                "metadata": {"name": "d", "generation": 1},
                "spec": {},
                "status": {
                    "observedGeneration": 1,
                    "desiredNumberScheduled": 3,
                    "updatedNumberScheduled": 3,
                    "numberAvailable": 2,
                },
            },
            False,
        ),
        (
            "DaemonSet",
            {"metadata": {"name": "d", "generation": 2}, "spec": {}, "status": {"observedGeneration": 1}},
            False,
        ),
        (
            "StatefulSet",
            {
                "metadata": {"name": "s", "generation": 1},
                "spec": {"replicas": 2},
                "status": {
                    "observedGeneration": 1,
                    "readyReplicas": 2,
                    "updateRevision": "r1",
                    "currentRevision": "r1",
                },
            },
            True,
        ),
        (
            "StatefulSet",
            {
                "metadata": {"name": "s", "generation": 1},
                "spec": {"replicas": 2},
                "status": {
                    "observedGeneration": 1,
                    "readyReplicas": 2,
                    "updateRevision": "r2",
                    "currentRevision": "r1",
                },
            },
            False,
        ),
        (
            "StatefulSet",
            {"metadata": {"name": "s", "generation": 1}, "spec": {"replicas": 2}, "status": {"readyReplicas": 2}},
            False,
        ),  # observedGeneration 0
    ],
)
def test_rollout_progress_follows_kubectl(kind: str, obj: dict[str, Any], done: bool) -> None:
    assert rollout_progress(kind, obj).done is done


def test_rollout_progress_deadline_exceeded_fails_fast() -> None:
    stuck = deployment(available=0)
    stuck["status"]["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    with pytest.raises(KubeError, match="exceeded its progress deadline"):
        rollout_progress("Deployment", stuck)


def gateway(programmed: str, observed_generation: int = 1, generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "egress", "namespace": NS, "generation": generation},
        "spec": {
            "gatewayClassName": "istio-waypoint",
            "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
        },
        "status": {
            "conditions": [
                {
                    "type": "Programmed",
                    "status": programmed,
                    "reason": "Programmed",
                    "observedGeneration": observed_generation,
                }
            ]
        },
    }


@pytest.mark.parametrize(
    ("obj", "met"),
    [
        (gateway("True"), True),
        (gateway("False"), False),
        (gateway("True", observed_generation=1, generation=2), False),  # a leftover of the previous spec
        (gateway("True", observed_generation=3, generation=2), True),
    ],
)
def test_gateway_programmed_honours_the_condition_s_generation(obj: dict[str, Any], met: bool) -> None:
    assert gateway_programmed(obj) is met
    assert condition_met(obj, "Programmed") is met


def istio_status(status: str, observed: str | None, generation: int) -> dict[str, Any]:
    """Istio writes observedGeneration on the status, not on each condition (and as a string)."""
    body: dict[str, Any] = {"conditions": [{"type": "istio.io/WaypointBound", "status": status}]}
    if observed is not None:
        body["observedGeneration"] = observed
    return {"metadata": {"generation": generation}, "status": body}


@pytest.mark.parametrize(
    ("obj", "met"),
    [
        (istio_status("True", "2", 2), True),
        (istio_status("True", "1", 2), False),
        (istio_status("True", None, 2), True),
        (istio_status("False", "2", 2), False),
    ],
)
def test_istio_status_generation_is_honoured(obj: dict[str, Any], met: bool) -> None:
    assert condition_met(obj, "istio.io/WaypointBound") is met


def test_a_condition_can_be_awaited_at_another_status() -> None:
    assert condition_met(istio_status("False", "2", 2), "istio.io/WaypointBound", "False")


def test_crd_established() -> None:
    crd = {"status": {"conditions": [{"type": "Established", "status": "True"}]}}
    assert crd_established(crd)
    assert not crd_established({"status": {"conditions": [{"type": "NamesAccepted", "status": "True"}]}})


def test_describe_condition_says_what_is_missing_or_stale() -> None:
    assert describe_condition({"status": {}}, "Programmed") == "no Programmed condition yet (no status conditions yet)"
    stale = gateway("True", observed_generation=1, generation=2)
    assert describe_condition(stale, "Programmed") == (
        "Programmed=True (Programmed: ) (observed generation 1, current 2)"
    )
