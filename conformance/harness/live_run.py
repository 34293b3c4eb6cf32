"""The live kind of run: Istio installed (or found) on the cluster per data-plane mode, the checks carried out
there. The plan kind is :class:`conformance.harness.run_kinds.PlannedRun`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.core import progress
from conformance.engine.actions import CheckActions
from conformance.engine.runtime import Runtime
from conformance.harness import fixtures as scenario_fixtures
from conformance.harness.collector import abort_run
from conformance.harness.fixtures import run_environment
from conformance.harness.keep import kept
from conformance.harness.run_kinds import Mesh
from conformance.istio.components import IstioError
from conformance.istio.detection import detect_installed, istiod_present
from conformance.istio.install import OVERLAYS, IstioInstaller
from conformance.istio.istioctl import istioctl_client_version
from conformance.kube.api import Kube, KubeError
from conformance.platform.binaries import BinaryError
from conformance.platform.cluster import ClusterHandle
from conformance.report.certification import RunKindFacts, live_run_facts
from conformance.settings.options import IstioSource, MeshMode
from conformance.settings.run_settings import Settings


def refuse_to_replace_istio(kube: Kube) -> str | None:
    """On a cluster the harness does not manage, never install over (and later purge) someone's Istio."""
    if not istiod_present(kube):
        return None
    try:
        what = f"Istio {detect_installed(kube).version} is"
    except IstioError:
        what = "an Istio control plane (istio-system/istiod) is"
    return (
        f"egress-conformance: {what} already installed on this cluster; pass --istio existing "
        "to test it as it is (the harness installs, and afterwards removes, its own Istio only on a cluster "
        "without one)"
    )


class LiveRun:
    """A run on a cluster: Istio installed (or found) per data-plane mode, the checks carried out."""

    reaches_cluster = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def report_facts(self) -> RunKindFacts:
        return live_run_facts(self.settings)

    def runtime(self, request: pytest.FixtureRequest, mesh: Mesh) -> Iterator[Runtime]:
        return scenario_fixtures.live_runtime(request, self.settings, mesh)

    def check_walked(self, actions: CheckActions) -> None:
        pass

    def check_passed(self) -> None:
        pass

    def finish(self, report_dir: Path) -> Path | None:
        return None

    def mesh(self, request: pytest.FixtureRequest, mode: MeshMode) -> Iterator[Mesh]:
        """Installed and, afterwards, uninstalled by the harness unless ``--istio existing``."""
        settings = self.settings
        cluster: ClusterHandle = request.getfixturevalue("cluster")
        kube: Kube = request.getfixturevalue("kube")
        environment = run_environment(request.config)
        if settings.istio_source is IstioSource.EXISTING:
            installed = detect_installed(kube)
            environment.istio_version = installed.version
            environment.install_method[mode.value] = (
                f"installed before the run; version {installed.version} detected from the istiod image"
                if mode in installed.modes
                else "not installed (the data plane's node agents were not found)"
            )
            if mode not in installed.modes:
                pytest.skip(f"the installed Istio {installed.version} does not run the {mode.value} data plane")
            yield Mesh(mode, installed.version, installed_by_harness=False)
            return
        if not cluster.managed:
            refusal = refuse_to_replace_istio(kube)
            if refusal:
                abort_run(request.config, refusal)
        try:
            installer: IstioInstaller = request.getfixturevalue("istio_installer")
        except BinaryError as exc:
            abort_run(request.config, str(exc))
        try:
            with progress.step(f"Installing Istio {settings.istio_version} ({mode.value} data plane)"):
                installer.install(mode)
        except BaseException as exc:
            # A half-done install must not stay behind, nor be the base the next mode installs over; the
            # install error stays the one reported.
            with contextlib.suppress(IstioError):
                installer.uninstall()
            if isinstance(exc, IstioError | KubeError):
                # Every check of the mode would fail on it alike: the run stops once, saying why.
                abort_run(request.config, f"installing Istio {settings.istio_version} ({mode.value}) failed: {exc}")
            raise
        environment.istio_version = settings.istio_version
        environment.install_method[mode.value] = (
            f"istioctl install -f manifests/istio/{OVERLAYS[mode].name} (by the harness)"
        )
        if environment.istioctl_version is None:
            environment.istioctl_version = istioctl_client_version(installer.istioctl)
        try:
            yield Mesh(mode, settings.istio_version, installed_by_harness=True)
        finally:
            if kept(request.config) is not None:
                progress.info(f"Istio ({mode.value} data plane) is left installed (--keep-on-failure)")
            else:
                with progress.step(f"Removing Istio ({mode.value} data plane)"):
                    installer.uninstall()
