"""Judging an object's status: conditions (with their generation) and rollouts as ``kubectl`` judges them.

Pure functions of the object's JSON; the waits in ``conformance.kube.api`` poll them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conformance.kube.errors import KubeError

ROLLOUT_KINDS = {"deployment": "Deployment", "daemonset": "DaemonSet", "statefulset": "StatefulSet"}


@dataclass(frozen=True)
class RolloutProgress:
    """One look at a workload, judged the way ``kubectl rollout status`` judges it."""

    done: bool
    message: str


def _int(value: Any) -> int:
    """Go omits zero-valued status counters from JSON; absent means 0."""
    return int(value) if value is not None else 0


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def describe_conditions(obj: Mapping[str, Any]) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    if not conditions:
        return "no status conditions yet"
    parts = []
    for c in conditions:
        text = f"{c.get('type')}={c.get('status')}"
        if c.get("reason"):
            text += f" ({c.get('reason')}: {c.get('message', '')})"
        parts.append(text)
    return "; ".join(parts)


def rollout_progress(kind: str, obj: Mapping[str, Any]) -> RolloutProgress:
    """Rollout state of a Deployment, DaemonSet or StatefulSet (``kubectl rollout status`` rules).

    Mirrors kubectl's polymorphichelpers/rollout_status.go. Raises KubeError where kubectl fails instead
    of waiting: a Deployment past its progress deadline, or an update strategy that is not RollingUpdate.
    """
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    name = metadata.get("name", "?")
    generation = _int(metadata.get("generation"))
    observed = _int(status.get("observedGeneration"))
    kind = ROLLOUT_KINDS.get(kind.lower(), kind)

    if kind == "Deployment":
        if generation > observed:
            return RolloutProgress(False, "waiting for the deployment spec update to be observed")
        progressing = _condition(obj, "Progressing")
        if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
            raise KubeError(f"deployment {name!r} exceeded its progress deadline")
        wanted = spec.get("replicas")
        updated = _int(status.get("updatedReplicas"))
        if wanted is not None and updated < int(wanted):
            return RolloutProgress(False, f"{updated} of {wanted} new replicas updated")
        replicas = _int(status.get("replicas"))
        if replicas > updated:
            return RolloutProgress(False, f"{replicas - updated} old replicas pending termination")
        available = _int(status.get("availableReplicas"))
        if available < updated:
            return RolloutProgress(False, f"{available} of {updated} updated replicas available")
        return RolloutProgress(True, f"deployment {name!r} rolled out")

    if kind == "DaemonSet":
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy != "RollingUpdate":
            raise KubeError(f"daemon set {name!r}: rollout status needs the RollingUpdate strategy, not {strategy}")
        if generation > observed:
            return RolloutProgress(False, "waiting for the daemon set spec update to be observed")
        desired = _int(status.get("desiredNumberScheduled"))
        updated = _int(status.get("updatedNumberScheduled"))
        if updated < desired:
            return RolloutProgress(False, f"{updated} of {desired} new pods updated")
        available = _int(status.get("numberAvailable"))
        if available < desired:
            return RolloutProgress(False, f"{available} of {desired} updated pods available")
        return RolloutProgress(True, f"daemon set {name!r} rolled out")

    if kind == "StatefulSet":
        strategy_spec = spec.get("updateStrategy") or {}
        strategy = strategy_spec.get("type", "RollingUpdate")
        if strategy != "RollingUpdate":
            raise KubeError(f"stateful set {name!r}: rollout status needs the RollingUpdate strategy, not {strategy}")
        if observed == 0 or generation > observed:
            return RolloutProgress(False, "waiting for the stateful set spec update to be observed")
        wanted = spec.get("replicas")
        ready = _int(status.get("readyReplicas"))
        if wanted is not None and ready < int(wanted):
            return RolloutProgress(False, f"{int(wanted) - ready} pods not ready yet")
        rolling = strategy_spec.get("rollingUpdate")
        if rolling is not None:
            partition = rolling.get("partition")
            updated = _int(status.get("updatedReplicas"))
            if wanted is not None and partition is not None and updated < int(wanted) - int(partition):
                return RolloutProgress(False, f"{updated} of {int(wanted) - int(partition)} new pods updated")
            return RolloutProgress(True, f"stateful set {name!r} partitioned roll out complete")
        if status.get("updateRevision") != status.get("currentRevision"):
            return RolloutProgress(False, f"rolling update to revision {status.get('updateRevision')} in progress")
        return RolloutProgress(True, f"stateful set {name!r} rolled out")

    raise KubeError(f"rollout status is defined for Deployment, DaemonSet and StatefulSet, not {kind}")


def condition_met(obj: Mapping[str, Any], condition_type: str, status: str = "True") -> bool:
    """The condition has ``status``, and it describes the current spec.

    The generation a condition was computed for is the condition's own ``observedGeneration`` (Gateway API,
    Kubernetes conventions), else the status's ``observedGeneration`` (Istio's status); when neither is
    given (a CRD's Established) the condition counts as current.
    """
    condition = _condition(obj, condition_type)
    if condition is None or condition.get("status") != status:
        return False
    generation = (obj.get("metadata") or {}).get("generation")
    observed = condition.get("observedGeneration")
    if observed is None:
        observed = (obj.get("status") or {}).get("observedGeneration")
    return generation is None or observed is None or int(observed) >= int(generation)


def describe_condition(obj: Mapping[str, Any], condition_type: str) -> str:
    """What a wait for ``condition_type`` last saw, for its timeout message."""
    condition = _condition(obj, condition_type)
    if condition is None:
        return f"no {condition_type} condition yet ({describe_conditions(obj)})"
    generation = (obj.get("metadata") or {}).get("generation")
    observed = condition.get("observedGeneration", (obj.get("status") or {}).get("observedGeneration"))
    text = describe_conditions({"status": {"conditions": [condition]}})
    if generation is not None and observed is not None and int(observed) < int(generation):
        text += f" (observed generation {observed}, current {generation})"
    return text


def crd_established(crd: Mapping[str, Any]) -> bool:
    return condition_met(crd, "Established")


def gateway_programmed(gateway: Mapping[str, Any]) -> bool:
    """Programmed=True, and not a leftover from an earlier generation of the spec."""
    return condition_met(gateway, "Programmed")
