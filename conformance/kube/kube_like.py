"""``KubeLike``: the part of ``conformance.kube.api.Kube`` the library uses, so stand-ins can take its place."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from conformance.kube.objects import AppliedObject, ExecResult, ObjectRef, PodInfo


class KubeLike(Protocol):
    """What the rest of the library uses of ``Kube``: the type of stand-ins in tests, too."""

    field_manager: str

    def apply(
        self, docs: Iterable[Mapping[str, Any]], default_namespace: str | None = None, *, dry_run: bool = False
    ) -> list[AppliedObject]: ...

    def apply_manifest(
        self,
        relative: str | Path,
        variables: Mapping[str, str] | None = None,
        default_namespace: str | None = None,
    ) -> list[AppliedObject]: ...

    def release(self, refs: Iterable[ObjectRef]) -> None: ...

    def delete(self, refs: Iterable[ObjectRef], timeout: float, wait: bool = True) -> None: ...

    def get(self, ref: ObjectRef) -> dict[str, Any] | None: ...

    def merge_patch(self, ref: ObjectRef, patch: Mapping[str, Any]) -> dict[str, Any]: ...

    def wait_condition(
        self, ref: ObjectRef, condition_type: str, status: str = "True", *, timeout: float, deadline_name: str
    ) -> dict[str, Any]: ...

    def wait_rollout(self, kind: str, namespace: str, name: str, timeout: float) -> None: ...

    def wait_crds_established(self, names: Iterable[str], timeout: float) -> None: ...

    def wait_gateway_programmed(self, namespace: str, name: str, timeout: float) -> None: ...

    def pods(self, namespace: str, label_selector: str) -> list[PodInfo]: ...

    def pod(self, namespace: str, name: str) -> PodInfo | None: ...

    def exec(
        self, namespace: str, pod: str, command: list[str], container: str | None, timeout: float
    ) -> ExecResult: ...

    def logs(self, namespace: str, label_selector: str, container: str | None, since: datetime) -> dict[str, str]: ...
