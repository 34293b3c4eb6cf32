"""Scenario fixtures: the runtime of each data-plane mode, the check's ``step``, clients and proxies.

The plugin registers this module. A check asks for what its documented steps use::

    def test_x(step, sleep, egress_gateway): ...

``runtime`` is a :class:`conformance.runtimes.live.LiveRuntime` on a cluster, or a
:class:`conformance.runtimes.planning.PlanRuntime` with ``--plan``; nothing below depends on which.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.checks.clients import Client
from conformance.checks.gateways import EgressGateway, Waypoint
from conformance.checks.policy_providers import PROVIDERS, EgressPolicies
from conformance.checks.step import Step
from conformance.core import evidence, progress, redaction
from conformance.engine.actions import CheckActions
from conformance.engine.check_run import CheckRun
from conformance.engine.runtime import Runtime, WorkloadSpec
from conformance.harness.keep import kept
from conformance.harness.run_kinds import RunKind
from conformance.report.environment import RunEnvironment
from conformance.settings.options import IstioSource, MeshMode
from conformance.settings.run_settings import Settings
from conformance.spec.catalogue import lookup
from conformance.spec.model import Check
from conformance.world.workloads import FRONTEND_SLEEP, FRONTEND_SLEEP_WITHOUT_SIDECAR, NGINX, SLEEP, SLEEP_A

CHECK_RUN_KEY = pytest.StashKey[CheckRun]()
#: How the run carries its checks out (conformance.harness.run_kinds), chosen once by the plugin.
RUN_KIND_KEY = pytest.StashKey[RunKind]()
#: The check's ``step`` (its run and runtime), for the hooks that handle a failure.
STEP_KEY = pytest.StashKey[Step]()
#: What the run observes of its environment (filled by the session fixtures, read by the report).
ENVIRONMENT_KEY = pytest.StashKey[RunEnvironment]()
#: The egress waypoint of seed 000: Gateway ``waypoint`` in the egress namespace ``istio-egress``.
EGRESS_WAYPOINT_NAMESPACE = "istio-egress"
EGRESS_WAYPOINT_NAME = "waypoint"


def check_of(item: pytest.Item) -> Check | None:
    marker = item.get_closest_marker("check")
    return lookup(str(marker.args[0])) if marker and marker.args else None


@pytest.fixture(scope="session")
def runtime(request: pytest.FixtureRequest, mesh: Any) -> Iterator[Runtime]:
    """What carries the scenarios out in this data-plane mode: the cluster, or the plan (the run's kind)."""
    yield from request.config.stash[RUN_KIND_KEY].runtime(request, mesh)


def live_runtime(request: pytest.FixtureRequest, settings: Settings, mesh: Any) -> Iterator[Runtime]:
    """The live kind's runtime: the client workloads of this mode on the cluster, removed afterwards."""
    mode: MeshMode = mesh.mode
    from conformance.runtimes.live import LiveRuntime

    kube = request.getfixturevalue("kube")
    live = LiveRuntime(
        kube,
        mode,
        settings.timeouts,
        request.getfixturevalue("external_world"),
        mesh.istio_version,
        _live_diagnostics(request, settings, kube),
    )
    try:
        yield live
    finally:
        environment = request.config.stash.get(ENVIRONMENT_KEY, None)
        if environment is not None:
            # Read before the workloads go and while this mode's Istio is still installed.
            environment.observe_data_plane(kube, mode.value, live.observed_namespaces(), live.observed_proxies())
        if kept(request.config) is None:
            live.remove_workloads()
        else:
            progress.info(f"the {mode.value} client workloads are left in place (--keep-on-failure)")


def _live_diagnostics(request: pytest.FixtureRequest, settings: Settings, kube: Any) -> Any:
    """How a failed check's evidence is read: the run's kubeconfig, and istioctl (the installer's, or
    resolved on first use when the harness did not install Istio)."""
    from conformance.istio.istioctl import resolve_istioctl
    from conformance.runtimes.failure_evidence import ClusterAccess
    from conformance.runtimes.live_diagnostics import LiveDiagnostics

    cluster = request.getfixturevalue("cluster")
    if settings.istio_source is IstioSource.INSTALL:
        installer = request.getfixturevalue("istio_installer")

        def istioctl() -> Path:
            return Path(installer.istioctl)
    else:

        def istioctl() -> Path:
            return resolve_istioctl(settings)

    return LiveDiagnostics(kube, ClusterAccess(cluster.kubeconfig, cluster.context), istioctl, settings.timeouts)


@pytest.fixture
def step(request: pytest.FixtureRequest, runtime: Runtime) -> Iterator[Step]:
    """The check's configuration: applied, tracked, and undone when the check ends (also on failure)."""
    item = request.node
    check = check_of(item)
    if check is None:
        raise pytest.UsageError(
            f"{item.nodeid} uses `step` but declares no check (sidecar_check, ambient_check or external_check)"
        )
    actions = CheckActions(check.id, item.nodeid, runtime.mode.value, check.profile.value, check.title)
    run = CheckRun(check, actions, planned=runtime.planning, placeholders=runtime.placeholders)
    item.stash[CHECK_RUN_KEY] = run
    # Secret values of the run (the test client's key) never appear in any report file.
    redaction.register_secrets(runtime.secret_values())
    seed_tags = (f"seed-{check.seed_label}",) if check.seed_label else ()
    # allure-pytest already tags a result with its markers; the mode is added for checks without one.
    mode_tags = () if item.get_closest_marker(runtime.mode.value) else (runtime.mode.value,)
    planned_tags = ("planned",) if run.planned else ()
    evidence.label_check(title=f"{check.id} {check.title}", tags=(*mode_tags, *seed_tags, *planned_tags))
    scenario_step = Step(run, runtime)
    item.stash[STEP_KEY] = scenario_step
    try:
        yield scenario_step
    finally:
        try:
            failure = kept(request.config)
            if failure is not None and failure.nodeid == item.nodeid:
                progress.info(f"{check.id}: its resources are left in place (--keep-on-failure)")
            else:
                scenario_step.cleanup()
        finally:
            request.config.stash[RUN_KIND_KEY].check_walked(actions)


def _client(step: Step, runtime: Runtime, spec: WorkloadSpec) -> Client:
    return Client(step, runtime.workload(spec))


@pytest.fixture
def sleep(step: Step, runtime: Runtime) -> Client:
    """``default/sleep`` (seeds 000, 002, 003)."""
    return _client(step, runtime, SLEEP)


@pytest.fixture
def frontend_sleep(step: Step, runtime: Runtime) -> Client:
    """``demo-frontend/sleep`` (seed 004)."""
    return _client(step, runtime, FRONTEND_SLEEP)


@pytest.fixture
def frontend_sleep_without_sidecar(step: Step, runtime: Runtime) -> Client:
    """A ``demo-frontend`` curl pod without a sidecar (seed 004, security considerations)."""
    return _client(step, runtime, FRONTEND_SLEEP_WITHOUT_SIDECAR)


@pytest.fixture
def sleep_a(step: Step, runtime: Runtime) -> Client:
    """``mytest/sleep-a`` (seed 001)."""
    return _client(step, runtime, SLEEP_A)


@pytest.fixture
def nginx(step: Step, runtime: Runtime) -> Client:
    """``default/nginx`` with curl (seed 001)."""
    return _client(step, runtime, NGINX)


@pytest.fixture
def external_probe(step: Step, runtime: Runtime) -> Client:
    """The external world's own curl pod, outside every mesh."""
    return Client(step, runtime.probe_client())


@pytest.fixture
def egress_gateway(step: Step, runtime: Runtime) -> EgressGateway:
    """The sidecar profile's egress gateway ``istio-system/istio-egressgateway``."""
    info = runtime.egress_gateway()
    if info is None:
        pytest.skip(
            "the installed Istio has no egress gateway (Service istio-system/istio-egressgateway with ready "
            "pods labelled istio=egressgateway); this check routes through it"
        )
    return EgressGateway(step, info)


@pytest.fixture
def etp(step: Step, egress_gateway: EgressGateway, settings: Settings) -> EgressPolicies:
    """Seed 001's egress traffic policies, expressed by the config provider of ``--etp-provider``."""
    return EgressPolicies(step, egress_gateway, PROVIDERS[settings.etp_provider])


def egress_waypoint(step: Step, mode: MeshMode) -> Waypoint:
    """The egress waypoint whose log a check reads; the check itself creates it. Skips outside ambient."""
    if mode is not MeshMode.AMBIENT:
        pytest.skip(
            f"the egress waypoint {EGRESS_WAYPOINT_NAMESPACE}/{EGRESS_WAYPOINT_NAME} belongs to the ambient data "
            f"plane; this check runs on the {mode.value} data plane"
        )
    return Waypoint(step, EGRESS_WAYPOINT_NAMESPACE, EGRESS_WAYPOINT_NAME)


@pytest.fixture
def waypoint(step: Step, runtime: Runtime) -> Waypoint:
    """The egress waypoint ``istio-egress/waypoint`` (seed 000): its access log."""
    return egress_waypoint(step, runtime.mode)


def run_environment(config: pytest.Config) -> RunEnvironment:
    return config.stash.setdefault(ENVIRONMENT_KEY, RunEnvironment())
