"""The harness's view of Kubernetes objects: references, apply results, pods, exec results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Identity of one applied object (enough to get or delete it)."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True)
class AppliedObject:
    """One server-side applied object.

    ``created`` says the harness owns the object as a whole, so cleanup deletes it: it did not exist before
    this apply, or every field manager of it is the harness's own (a leftover of an earlier run). Otherwise
    the object was there before and cleanup releases the harness's fields instead (``Kube.release``).
    """

    ref: ObjectRef
    created: bool
    #: The object as the API server returned it after the apply.
    object: dict[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    ip: str | None
    phase: str
    ready: bool
    containers: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    #: The pod is being deleted (``deletionTimestamp`` set): it may still run and even be Ready, but it is
    #: on its way out, so no probe may choose it.
    terminating: bool = False


@dataclass(frozen=True)
class ExecResult:
    stdout: str
    stderr: str
    #: Process exit code; 0 on success.
    exit_code: int


def pod_info(pod: Mapping[str, Any]) -> PodInfo:
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return PodInfo(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        ip=status.get("podIP") or None,
        phase=str(status.get("phase") or "Unknown"),
        ready=ready is not None and ready.get("status") == "True",
        containers=tuple(str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []),
        labels=dict(metadata.get("labels") or {}),
        terminating=bool(metadata.get("deletionTimestamp")),
    )
