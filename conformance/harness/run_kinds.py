"""How a run carries its checks out: on a cluster, or as a plan. The kind is chosen once, from the settings
(:func:`conformance.harness.plugin.run_kind_for`); the plugin, the fixtures and the collector ask it what to
do, and none of them tells a plan from a live run itself.

The live kind, :class:`conformance.harness.live_run.LiveRun`, installs (or finds) Istio on the cluster the
session fixtures reach. The plan kind is here: it installs nothing, walks every check with a
:class:`~conformance.runtimes.planning.PlanRuntime`, writes ``plan.json`` and reports each check skipped as
planned.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from conformance.engine.actions import CheckActions
from conformance.engine.runtime import Runtime
from conformance.report.certification import PLANNED_RUN_FACTS, RunKindFacts
from conformance.runtimes.planning import Plan, PlanRuntime, planned_egress_gateway
from conformance.settings.options import MeshMode
from conformance.settings.run_settings import Settings

#: The skip reason of a check a plan walked without a failure: a plan is not a pass.
PLANNED_REASON = "planned: a plan run walks the check without carrying anything out"


@dataclass(frozen=True)
class Mesh:
    """The Istio data plane a scenario runs on."""

    mode: MeshMode
    istio_version: str
    #: True when the harness installed this Istio (and removes it after the mode's checks).
    installed_by_harness: bool


class RunKind(Protocol):
    #: Whether the run needs a cluster it can reach (so, without --kubeconfig, a container engine for kind).
    reaches_cluster: bool

    @property
    def report_facts(self) -> RunKindFacts:
        """What the conformance report states of the run's kind, and why the kind alone certifies nothing."""
        ...

    def mesh(self, request: pytest.FixtureRequest, mode: MeshMode) -> Iterator[Mesh]:
        """The ``mesh`` fixture's body: Istio in ``mode`` for the mode's checks."""
        ...

    def runtime(self, request: pytest.FixtureRequest, mesh: Mesh) -> Iterator[Runtime]:
        """The ``runtime`` fixture's body: what carries the mode's checks out."""
        ...

    def check_walked(self, actions: CheckActions) -> None:
        """A check's body ended (passed, failed or skipped): its recorded actions."""
        ...

    def check_passed(self) -> None:
        """A check's body ran to its end without a failure."""
        ...

    def finish(self, report_dir: Path) -> Path | None:
        """The session ends: the plan file written, when the kind writes one."""
        ...


class PlannedRun:
    """A plan run: nothing is installed and no cluster is needed; each check is walked and recorded."""

    reaches_cluster = False
    report_facts = PLANNED_RUN_FACTS

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gateway = planned_egress_gateway(settings.plan_gateway)
        self.plan = Plan(settings.istio_version, self.gateway)

    def mesh(self, request: pytest.FixtureRequest, mode: MeshMode) -> Iterator[Mesh]:
        yield Mesh(mode, self.settings.istio_version, installed_by_harness=False)

    def runtime(self, request: pytest.FixtureRequest, mesh: Mesh) -> Iterator[Runtime]:
        settings = self.settings
        yield PlanRuntime(mesh.mode, settings.timeouts, gateway=self.gateway, istio_version=settings.istio_version)

    def check_walked(self, actions: CheckActions) -> None:
        self.plan.add(actions)

    def check_passed(self) -> None:
        pytest.skip(PLANNED_REASON)

    def finish(self, report_dir: Path) -> Path:
        return self.plan.write(report_dir)
