"""A base for in-memory stand-ins of ``conformance.kube.api.Kube``.

``KubeStandIn`` implements the whole ``KubeLike`` protocol, so a stand-in that overrides only the methods
its test expects still type-checks wherever the library takes a ``KubeLike``; any other call fails the
test, naming the method.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from conformance.kube.api import FIELD_MANAGER, AppliedObject, ExecResult, ObjectRef, PodInfo


def _unexpected(method: str) -> NoReturn:
    raise AssertionError(f"this test's Kube stand-in does not expect a call of {method}()")


class KubeStandIn:
    field_manager: str = FIELD_MANAGER

    def apply(
        self, docs: Iterable[Mapping[str, Any]], default_namespace: str | None = None, *, dry_run: bool = False
    ) -> list[AppliedObject]:
        _unexpected("apply")

    def apply_manifest(
        self,
        relative: str | Path,
        variables: Mapping[str, str] | None = None,
        default_namespace: str | None = None,
    ) -> list[AppliedObject]:
        _unexpected("apply_manifest")

    def release(self, refs: Iterable[ObjectRef]) -> None:
        _unexpected("release")

    def delete(self, refs: Iterable[ObjectRef], timeout: float, wait: bool = True) -> None:
        _unexpected("delete")

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        _unexpected("get")

    def merge_patch(self, ref: ObjectRef, patch: Mapping[str, Any]) -> dict[str, Any]:
        _unexpected("merge_patch")

    def wait_condition(
        self, ref: ObjectRef, condition_type: str, status: str = "True", *, timeout: float, deadline_name: str
    ) -> dict[str, Any]:
        _unexpected("wait_condition")

    def wait_rollout(self, kind: str, namespace: str, name: str, timeout: float) -> None:
        _unexpected("wait_rollout")

    def wait_crds_established(self, names: Iterable[str], timeout: float) -> None:
        _unexpected("wait_crds_established")

    def wait_gateway_programmed(self, namespace: str, name: str, timeout: float) -> None:
        _unexpected("wait_gateway_programmed")

    def pods(self, namespace: str, label_selector: str) -> list[PodInfo]:
        _unexpected("pods")

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        _unexpected("pod")

    def exec(self, namespace: str, pod: str, command: list[str], container: str | None, timeout: float) -> ExecResult:
        _unexpected("exec")

    def logs(self, namespace: str, label_selector: str, container: str | None, since: datetime) -> dict[str, str]:
        _unexpected("logs")
