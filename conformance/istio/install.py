"""Installing and removing Istio per data-plane mode with istioctl.

istioctl is driven as a process (flags as defined in istio/istio: ``install`` in operator/cmd/mesh
install.go, ``uninstall --purge``, the global ``--kubeconfig``/``--context`` of istioctl/pkg/cli
option.go). Everything else goes through ``Kube``. Ambient mode first gets the Gateway API CRDs
(``conformance.istio.gateway_api``), which uninstall removes again only if this installer created them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from conformance import MANIFESTS_DIR
from conformance.core import progress, versions
from conformance.core.processes import run_tool
from conformance.core.timeouts import Timeouts
from conformance.istio.components import (
    EGRESS_GATEWAY,
    ISTIO_CNI,
    ISTIO_NAMESPACE,
    ISTIO_NAMESPACE_REF,
    ISTIOD,
    ZTUNNEL,
    IstioError,
    Workload,
    WorkloadKind,
)
from conformance.istio.gateway_api import CrdKube, ensure_gateway_api_crds
from conformance.istio.istioctl import resolve_istioctl
from conformance.kube.api import KubeError, ObjectRef
from conformance.settings.options import MeshMode
from conformance.settings.run_settings import DEFAULT_ISTIO_HUB, Settings


class InstallerKube(CrdKube, Protocol):
    """The part of ``conformance.kube.api.Kube`` the installer needs."""

    def delete(self, refs: Iterable[ObjectRef], timeout: float, wait: bool = True) -> None: ...

    def wait_rollout(self, kind: str, namespace: str, name: str, timeout: float) -> None: ...


OVERLAYS: Mapping[MeshMode, Path] = {
    MeshMode.SIDECAR: MANIFESTS_DIR / "istio" / "sidecar.yaml",
    MeshMode.AMBIENT: MANIFESTS_DIR / "istio" / "ambient.yaml",
}

#: What must be rolled out before a mode's scenarios can run.
ROLLOUTS: Mapping[MeshMode, tuple[Workload, ...]] = {
    MeshMode.SIDECAR: (
        Workload(WorkloadKind.DEPLOYMENT, ISTIOD),
        Workload(WorkloadKind.DEPLOYMENT, EGRESS_GATEWAY),
    ),
    MeshMode.AMBIENT: (
        Workload(WorkloadKind.DEPLOYMENT, ISTIOD),
        Workload(WorkloadKind.DAEMON_SET, ZTUNNEL),
        Workload(WorkloadKind.DAEMON_SET, ISTIO_CNI),
    ),
}


@dataclass
class IstioInstaller:
    """Installs and removes Istio on one cluster with one istioctl."""

    istioctl: Path
    kube: InstallerKube
    kubeconfig: Path
    context: str | None
    timeouts: Timeouts
    cache_dir: Path
    #: Gateway API bundle version the Istio release expects (versions.istio_release(v).gateway_api).
    gateway_api_version: str
    #: Gateway API objects this installer created, removed again by ``uninstall``.
    created_gateway_api: list[ObjectRef] = field(default_factory=list)
    #: istio-system was there before the install (e.g. a user's `cacerts` Secret): keep it at uninstall.
    istio_namespace_preexisted: bool = False
    #: Registry path and tag of Istio's images (istioctl's hub and tag values); None: the release's own.
    hub: str | None = None
    tag: str | None = None
    #: An IstioOperator file merged over the harness's overlay (``--istio-overlay``).
    extra_overlay: Path | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, kube: InstallerKube, kubeconfig: Path, context: str | None
    ) -> IstioInstaller:
        return cls(
            istioctl=resolve_istioctl(settings),
            kube=kube,
            kubeconfig=kubeconfig,
            context=context,
            timeouts=settings.timeouts,
            cache_dir=settings.cache_dir,
            gateway_api_version=versions.istio_release(settings.istio_version).gateway_api,
            hub=settings.istio_hub if settings.istio_hub != DEFAULT_ISTIO_HUB else None,
            tag=settings.istio_tag,
            extra_overlay=settings.istio_overlay,
        )

    def install_command(self, mode: MeshMode) -> list[str]:
        # istioctl waits for each component itself (--readiness-timeout, default 300s); tie that wait to
        # the named rollout deadline so --timeout-scale stretches it too.
        readiness = f"{math.ceil(self.timeouts.rollout)}s"
        overlays = ["-f", str(OVERLAYS[mode])]
        if self.extra_overlay is not None:
            overlays += ["-f", str(self.extra_overlay)]
        images = (["--set", f"hub={self.hub}"] if self.hub else []) + (["--set", f"tag={self.tag}"] if self.tag else [])
        return [
            str(self.istioctl),
            "install",
            "--skip-confirmation",
            *overlays,
            *images,
            "--readiness-timeout",
            readiness,
            *self._cluster_flags(),
        ]

    def uninstall_command(self) -> list[str]:
        return [str(self.istioctl), "uninstall", "--purge", "--skip-confirmation", *self._cluster_flags()]

    def install(self, mode: MeshMode) -> None:
        """Install Istio for ``mode`` and wait until its components are rolled out."""
        self.istio_namespace_preexisted = self.kube.get(ISTIO_NAMESPACE_REF) is not None
        if mode is MeshMode.AMBIENT:
            created = ensure_gateway_api_crds(self.kube, self.gateway_api_version, self.cache_dir, self.timeouts)
            self.created_gateway_api.extend(ref for ref in created if ref not in self.created_gateway_api)
        with progress.step(f"istioctl install ({mode.value}, {OVERLAYS[mode].name})"):
            self._istioctl(self.install_command(mode), self.timeouts.istio_install, "istio_install")
        for workload in ROLLOUTS[mode]:
            with progress.step(f"waiting for {workload} to roll out"):
                self.kube.wait_rollout(workload.kind.value, workload.namespace, workload.name, self.timeouts.rollout)

    def uninstall(self) -> None:
        """Remove every Istio control/data-plane resource, the istio-system namespace, and the Gateway API
        objects this installer created (CRDs that were there before stay).

        Every step runs even when an earlier one failed (this is cleanup); the failures are raised
        together at the end.
        """
        failures: list[str] = []

        def attempt(description: str, action: Callable[[], None]) -> bool:
            try:
                with progress.step(description):
                    action()
            except (IstioError, KubeError) as exc:
                failures.append(f"{description}: {exc}")
                return False
            return True

        attempt(
            "istioctl uninstall --purge",
            lambda: self._istioctl(self.uninstall_command(), self.timeouts.istio_install, "istio_install"),
        )
        if not self.istio_namespace_preexisted:
            attempt(
                f"deleting namespace {ISTIO_NAMESPACE}",
                lambda: self.kube.delete([ISTIO_NAMESPACE_REF], self.timeouts.delete),
            )
        if self.created_gateway_api:
            created = list(self.created_gateway_api)
            removed = attempt(
                "removing the Gateway API objects this run created",
                lambda: self.kube.delete(created, self.timeouts.delete),
            )
            if removed:
                self.created_gateway_api.clear()
        if failures:
            raise IstioError("uninstalling Istio failed:\n" + "\n".join(failures))

    def _cluster_flags(self) -> list[str]:
        flags = ["--kubeconfig", str(self.kubeconfig)]
        if self.context:
            flags += ["--context", self.context]
        return flags

    def _istioctl(self, command: list[str], timeout: float, deadline_name: str) -> None:
        run_tool(command, timeout, error=IstioError, deadline_name=deadline_name)
