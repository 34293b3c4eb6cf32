"""What a failed check's evidence is read from on a real run: the API server, and istioctl with the run's
kubeconfig (``conformance.runtimes.failure_evidence`` decides what to read)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from conformance.core.processes import run_tool
from conformance.core.timeouts import Timeouts
from conformance.kube.api import Kube
from conformance.runtimes.failure_evidence import ClusterAccess, CommandOutput


class DiagnosticsError(RuntimeError):
    """A diagnostic command could not be run (istioctl missing, timed out)."""


class LiveDiagnostics:
    """What a failed check's evidence is read from: the API server, and istioctl with the run's kubeconfig."""

    def __init__(self, kube: Kube, access: ClusterAccess, istioctl: Callable[[], Path], timeouts: Timeouts) -> None:
        self._kube = kube
        self._access = access
        self._resolve_istioctl = istioctl
        self._istioctl: Path | None = None
        self._istioctl_problem: str | None = None
        self._timeouts = timeouts

    @property
    def access(self) -> ClusterAccess:
        return self._access

    def logs(self, namespace: str, selector: str, container: str, since: datetime) -> dict[str, str]:
        return self._kube.logs(namespace, selector, container, since)

    def pod_names(self, namespace: str, selector: str) -> list[str]:
        return [p.name for p in self._kube.pods(namespace, selector)]

    def events(self, namespace: str) -> list[dict[str, Any]]:
        return self._kube.list_objects("v1", "Event", namespace)

    def istioctl(self, args: Sequence[str]) -> CommandOutput:
        command = [str(self._binary()), *args, *self._access.flags()]
        result = run_tool(
            command, self._timeouts.diagnostics, error=DiagnosticsError, deadline_name="diagnostics", check=False
        )
        return CommandOutput(result.returncode, result.stdout, result.stderr)

    def _binary(self) -> Path:
        # Resolved once: a missing istioctl is reported for each command without trying again.
        if self._istioctl is None and self._istioctl_problem is None:
            try:
                self._istioctl = self._resolve_istioctl()
            except Exception as exc:
                self._istioctl_problem = f"istioctl is not available: {exc}"
        if self._istioctl is None:
            raise DiagnosticsError(self._istioctl_problem or "istioctl is not available")
        return self._istioctl
