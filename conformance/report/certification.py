"""Whether a run, and each profile of it, can be handed in for certification: the profiles' summaries and
the reasons that rule a run or a profile out."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.report.check_records import CheckRecord, CheckResult
from conformance.settings.options import IstioSource
from conformance.settings.run_settings import Settings

#: The one ``-m`` expression that selects the whole suite.
FULL_SUITE_MARKEXPR = "egress"

#: Why the kind of run alone certifies nothing.
PLAN_RUN_OBSTACLE = "plan run: nothing was carried out on a cluster"
HARNESS_INSTALLED_ISTIO_OBSTACLE = (
    "the harness installed upstream Istio itself: a reference run of upstream Istio, not of an "
    "implementation under test (certify an installation with --istio existing and --implementation-file)"
)


@dataclass(frozen=True)
class RunKindFacts:
    """What the run's kind (a plan, or a run on a cluster) tells the report: the report states them and never
    tells the kinds apart itself."""

    plan: bool
    #: Why a run of this kind certifies nothing, whatever its checks show.
    certification_obstacles: tuple[str, ...]


PLANNED_RUN_FACTS = RunKindFacts(plan=True, certification_obstacles=(PLAN_RUN_OBSTACLE,))


def live_run_facts(settings: Settings) -> RunKindFacts:
    """A run on a cluster: certifiable only against an Istio the harness did not install itself."""
    installed = settings.istio_source is IstioSource.INSTALL
    return RunKindFacts(plan=False, certification_obstacles=(HARNESS_INSTALLED_ISTIO_OBSTACLE,) if installed else ())


class ProfileResult(enum.StrEnum):
    SUCCESS = "success"
    #: Nothing failed but some core check did not pass (skipped, not run, not implemented, ...).
    PARTIAL = "partial"
    FAILURE = "failure"


class RunStatus(enum.StrEnum):
    COMPLETED = "completed"
    ABORTED = "aborted"


#: Results that count as a problem for a profile without being a failure.
_INCOMPLETE = frozenset(
    {
        CheckResult.SKIPPED,
        CheckResult.PLANNED,
        CheckResult.NOT_RUN,
        CheckResult.NOT_SELECTED,
        CheckResult.NOT_IMPLEMENTED,
    }
)


@dataclass
class ProfileSummary:
    name: str
    checks: list[CheckRecord] = field(default_factory=list)

    def count(self, result: CheckResult) -> int:
        return sum(1 for c in self.checks if c.result is result)

    @property
    def result(self) -> ProfileResult:
        if self.count(CheckResult.FAILED):
            return ProfileResult.FAILURE
        core = [c for c in self.checks if c.core and c.result is not CheckResult.NOT_APPLICABLE]
        if not core or any(c.result in _INCOMPLETE for c in core):
            return ProfileResult.PARTIAL
        return ProfileResult.SUCCESS

    def as_dict(self, not_certifiable_because: Sequence[str] = ()) -> dict[str, Any]:
        certification: dict[str, Any] = {"certifiable": not not_certifiable_because}
        if not_certifiable_because:
            certification["notCertifiableBecause"] = list(not_certifiable_because)
        return {
            "name": self.name,
            "summary": {
                "result": self.result.value,
                "statistics": {r.value: self.count(r) for r in CheckResult},
            },
            **certification,
            "failedChecks": sorted({c.check_id for c in self.checks if c.result is CheckResult.FAILED}),
            "skippedChecks": sorted({c.check_id for c in self.checks if c.result is CheckResult.SKIPPED}),
            "notPassedChecks": [
                {"id": c.check_id, "mode": c.mode, "result": c.result.value, "reason": c.reason or c.result.value}
                for c in self.checks
                if c.result is not CheckResult.PASSED
            ],
            "checks": [c.as_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class Selection:
    """How the run chose its checks (pytest's ``-m`` and ``-k``)."""

    mark_expression: str = FULL_SUITE_MARKEXPR
    keyword_expression: str = ""

    def record(self) -> dict[str, Any]:
        return {"markExpression": self.mark_expression, "keywordExpression": self.keyword_expression or None}


#: The profiles a report can certify; EXTERNAL-WORLD checks the harness itself.
CERTIFICATION_PROFILES = ("EGRESS-SIDECAR", "EGRESS-AMBIENT")
EXTERNAL_WORLD_PROFILE = "EXTERNAL-WORLD"


def certifiable(
    records: Sequence[CheckRecord],
    settings: Settings,
    status: RunStatus,
    selection: Selection | None = None,
    kind: RunKindFacts | None = None,
) -> list[str]:
    """Why no profile of the run can be handed in for certification, whatever its checks show (empty when
    the run as a whole qualifies; each profile adds its own reasons, see :func:`profile_certifiability`).
    ``kind`` is what the run's kind says of itself (a run on a cluster unless told otherwise)."""
    selection = selection or Selection()
    kind = kind or live_run_facts(settings)
    reasons = list(kind.certification_obstacles)
    if status is RunStatus.ABORTED:
        reasons.append("the run stopped before its checks ran")
    if selection.mark_expression.strip() != FULL_SUITE_MARKEXPR:
        reasons.append(
            f"narrowed by -m {selection.mark_expression!r}: only `-m {FULL_SUITE_MARKEXPR}` selects the whole suite "
            "(choose data-plane modes with --mesh-mode)"
        )
    if selection.keyword_expression.strip():
        reasons.append(f"narrowed by -k {selection.keyword_expression!r}")
    if settings.implementation is None and settings.istio_source is IstioSource.EXISTING:
        reasons.append("the Istio under test is not described: pass --implementation-file")
    if settings.istio_overlay is not None:
        reasons.append(
            f"Istio was installed with --istio-overlay {settings.istio_overlay.name}, which changes Istio's "
            "defaults: the configuration under test is not the documented one"
        )
    failing = sorted(
        r.check_id for r in records if r.profile == EXTERNAL_WORLD_PROFILE and r.result is CheckResult.FAILED
    )
    if failing:
        reasons.append(f"the harness's checks of its own external world failed ({', '.join(failing)})")
    return reasons


def profile_certifiability(profile: ProfileSummary, run_reasons: Sequence[str], modes: Sequence[str]) -> list[str]:
    """Why ``profile`` cannot be certified by this report (empty when it can)."""
    if profile.name not in CERTIFICATION_PROFILES:
        return ["the harness's checks of itself: a condition of every other profile, not a profile to certify"]
    reasons = list(run_reasons)
    core = [c for c in profile.checks if c.core]

    def ids(result: CheckResult) -> str:
        return ", ".join(sorted({c.check_id for c in core if c.result is result}))

    if any(c.result is CheckResult.NOT_SELECTED for c in core):
        reasons.append(
            f"its checks were not selected (this run: --mesh-mode {','.join(modes)}; -k / -m narrow too): "
            + ids(CheckResult.NOT_SELECTED)
        )
    for result, what in (
        (CheckResult.FAILED, "failed"),
        (CheckResult.SKIPPED, "were skipped"),
        (CheckResult.NOT_RUN, "did not run"),
        (CheckResult.NOT_IMPLEMENTED, "are not implemented"),
    ):
        if any(c.result is result for c in core):
            reasons.append(f"core checks {what}: {ids(result)}")
    return reasons
