"""Scenario fixtures: the runtime of each data-plane mode, the check's ``step``, clients and proxies.

The plugin registers this module. A check asks for what its documented steps use::

    def test_x(step, sleep, egress_gateway): ...

``runtime`` is a :class:`conformance.live.LiveRuntime` on a cluster, or a
:class:`conformance.planning.PlanRuntime` with ``--plan``; nothing below depends on which.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conformance import evidence
from conformance.actions import CheckActions
from conformance.catalogue import Check, lookup
from conformance.runtime import Runtime, WorkloadSpec
from conformance.scenario import CheckRun, Client, EgressGateway, Step, Waypoint
from conformance.settings import MeshMode, Settings
from conformance.workloads import FRONTEND_SLEEP, FRONTEND_SLEEP_WITHOUT_SIDECAR, NGINX, SLEEP, SLEEP_A

CHECK_RUN_KEY = pytest.StashKey[CheckRun]()
PLAN_KEY = pytest.StashKey[Any]()
#: The egress waypoint of seed 000: Gateway ``waypoint`` in the egress namespace ``istio-egress``.
EGRESS_WAYPOINT_NAMESPACE = "istio-egress"
EGRESS_WAYPOINT_NAME = "waypoint"


def check_of(item: pytest.Item) -> Check | None:
    marker = item.get_closest_marker("check")
    return lookup(str(marker.args[0])) if marker and marker.args else None


@pytest.fixture(scope="session")
def runtime(request: pytest.FixtureRequest, settings: Settings, mesh: Any) -> Iterator[Runtime]:
    """What carries the scenarios out in this data-plane mode: the cluster, or the plan."""
    mode: MeshMode = mesh.mode
    if settings.plan:
        from conformance.planning import PlanRuntime

        yield PlanRuntime(mode, settings.timeouts)
        return
    from conformance.live import LiveRuntime

    live = LiveRuntime(request.getfixturevalue("kube"), mode, settings.timeouts,
                       request.getfixturevalue("external_world"))  # fmt: skip
    try:
        yield live
    finally:
        live.remove_workloads()


@pytest.fixture
def step(request: pytest.FixtureRequest, runtime: Runtime) -> Iterator[Step]:
    """The check's configuration: applied, tracked, and undone when the check ends (also on failure)."""
    item = request.node
    check = check_of(item)
    if check is None:
        raise pytest.UsageError(f"{item.nodeid} uses `step` without @check(ID)")
    actions = CheckActions(check.id, item.nodeid, runtime.mode.value, check.profile.value, check.title)
    run = CheckRun(check, actions, planned=runtime.planning)
    item.stash[CHECK_RUN_KEY] = run
    seed_tags = (f"seed-{check.seed_label}",) if check.seed_label else ()
    evidence.label_check(title=f"{check.id} {check.title}", epic=check.profile.value, feature=check.family,
                         story=check.id, tags=(runtime.mode.value, *seed_tags))  # fmt: skip
    scenario_step = Step(run, runtime)
    try:
        yield scenario_step
    finally:
        try:
            scenario_step.cleanup()
        finally:
            plan = request.config.stash.get(PLAN_KEY, None)
            if plan is not None:
                plan.add(actions)


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
