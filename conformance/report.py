"""The machine-readable conformance report, fit for vendor certification.

Every check of the catalogue is in the report: the selected ones with their result (passed, failed,
skipped with its reason, planned, not run when the run stopped early), the others as not selected, not
implemented or not applicable — so a partial run can never look like a full pass. Shape follows the
Gateway API ConformanceReport: a summary per profile (success / partial / failure with statistics), then
every check with its ID.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conformance import DOCUMENT_API_VERSION, __version__
from conformance.catalogue import CATALOGUE, Check, Profile, Tier
from conformance.settings import Settings

REPORT_FILE = "conformance-report.yaml"
REPORT_API_VERSION = DOCUMENT_API_VERSION

#: Marker -> profile name in the report.
PROFILE_MARKERS = {
    "egress_sidecar": Profile.EGRESS_SIDECAR.value,
    "egress_ambient": Profile.EGRESS_AMBIENT.value,
    "external_world": Profile.EXTERNAL_WORLD.value,
}
UNPROFILED = "UNPROFILED"


class CheckResult(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    #: Walked by a plan run: nothing was carried out.
    PLANNED = "planned"
    #: Selected, but the run stopped before it.
    NOT_RUN = "not-run"
    #: Implemented, but left out by -k / -m.
    NOT_SELECTED = "not-selected"
    #: In the catalogue, without a test.
    NOT_IMPLEMENTED = "not-implemented"
    #: Does not apply to upstream Istio (the catalogue says why).
    NOT_APPLICABLE = "not-applicable"


class ProfileResult(enum.StrEnum):
    SUCCESS = "success"
    #: Nothing failed but some core check did not pass (skipped, not run, not implemented, ...).
    PARTIAL = "partial"
    FAILURE = "failure"


class RunStatus(enum.StrEnum):
    COMPLETED = "completed"
    ABORTED = "aborted"


@dataclass
class CheckRecord:
    check_id: str
    nodeid: str | None
    profile: str
    mode: str | None
    result: CheckResult
    reason: str | None = None
    duration: float = 0.0
    #: Extra facts of the run (adaptations applied, observed outcomes, convergence times).
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def check(self) -> Check | None:
        return CATALOGUE.get(self.check_id)

    @property
    def core(self) -> bool:
        check = self.check
        return check is None or check.tier is Tier.CORE

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.check_id}
        check = self.check
        if check is not None:
            data["title"] = check.title
            data["tier"] = check.tier.value
        if self.nodeid:
            data["test"] = self.nodeid
        data["result"] = self.result.value
        if self.mode:
            data["mode"] = self.mode
        if self.reason:
            data["reason"] = self.reason
        if check is not None and check.deviation:
            data["deviation"] = {"documented": check.documented, "expected": check.expected, "reason": check.deviation}
        data.update(self.details)
        data["durationSeconds"] = round(self.duration, 3)
        return data


#: Results that count as a problem for a profile without being a failure.
_INCOMPLETE = frozenset(
    {CheckResult.SKIPPED, CheckResult.PLANNED, CheckResult.NOT_RUN, CheckResult.NOT_SELECTED,
     CheckResult.NOT_IMPLEMENTED}
)  # fmt: skip


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": {
                "result": self.result.value,
                "statistics": {r.value: self.count(r) for r in CheckResult},
            },
            "failedChecks": sorted({c.check_id for c in self.checks if c.result is CheckResult.FAILED}),
            "notPassedChecks": [
                {"id": c.check_id, "mode": c.mode, "result": c.result.value, "reason": c.reason}
                for c in self.checks
                if c.result not in (CheckResult.PASSED, CheckResult.FAILED)
            ],
            "checks": [c.as_dict() for c in self.checks],
        }


def catalogue_gaps(
    records: Sequence[CheckRecord], implemented: Iterable[str], profiles: Iterable[str] | None = None
) -> list[CheckRecord]:
    """Records for the catalogue checks the run did not select: not applicable, not implemented, or left
    out by -k / -m. ``implemented`` are the IDs that have a test; ``profiles`` limits to those profiles."""
    present = {r.check_id for r in records}
    implemented_ids = set(implemented)
    wanted = set(profiles) if profiles is not None else None
    gaps = []
    for check in CATALOGUE.values():
        if check.id in present or (wanted is not None and check.profile.value not in wanted):
            continue
        mode = ",".join(m.value for m in check.modes) or None
        if check.not_applicable:
            gaps.append(CheckRecord(check.id, None, check.profile.value, mode, CheckResult.NOT_APPLICABLE,
                                    check.not_applicable))  # fmt: skip
        elif check.id not in implemented_ids:
            gaps.append(CheckRecord(check.id, None, check.profile.value, mode, CheckResult.NOT_IMPLEMENTED,
                                    "the catalogue has this check but the harness has no test for it yet"))  # fmt: skip
        else:
            gaps.append(CheckRecord(check.id, None, check.profile.value, mode, CheckResult.NOT_SELECTED,
                                    "left out of this run by -k / -m / --mesh-mode"))  # fmt: skip
    return gaps


def certifiable(records: Sequence[CheckRecord], settings: Settings, status: RunStatus) -> list[str]:
    """Why the run cannot be handed in for certification (empty when it can)."""
    reasons: list[str] = []
    if settings.plan:
        reasons.append("plan run: nothing was carried out on a cluster")
    if status is RunStatus.ABORTED:
        reasons.append("the run stopped before its checks ran")
    if any(r.result is CheckResult.NOT_SELECTED for r in records):
        reasons.append("narrowed run: some implemented checks were not selected (-k / -m / --mesh-mode)")
    if any(r.result is CheckResult.NOT_IMPLEMENTED and r.core for r in records):
        reasons.append("some core checks of the catalogue are not implemented")
    if any(r.result is CheckResult.SKIPPED and r.core for r in records):
        reasons.append("some core checks were skipped")
    return reasons


def build_report(
    records: Iterable[CheckRecord],
    settings: Settings,
    *,
    istio_version: str | None = None,
    kubernetes_version: str | None = None,
    status: RunStatus = RunStatus.COMPLETED,
    status_reason: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The report document. ``istio_version`` is what was installed or detected; None when neither
    happened (the report then never claims a version)."""
    all_records = list(records)
    profiles: dict[str, ProfileSummary] = {}
    for record in all_records:
        profiles.setdefault(record.profile, ProfileSummary(record.profile)).checks.append(record)
    reasons = certifiable(all_records, settings, status)
    run: dict[str, Any] = {"status": status.value}
    if status_reason:
        run["reason"] = status_reason
    run["plan"] = settings.plan
    run["certifiable"] = not reasons
    if reasons:
        run["notCertifiableBecause"] = reasons
    return {
        "apiVersion": REPORT_API_VERSION,
        "kind": "ConformanceReport",
        "date": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        "harness": {"name": "egress-conformance", "version": __version__},
        "run": run,
        "implementation": {
            "project": "istio",
            "version": istio_version,
            "requestedVersion": settings.istio_version if settings.istio_source.value == "install" else None,
            "installedBy": "harness" if settings.istio_source.value == "install" else "existing",
        },
        "cluster": {
            "provider": "existing" if settings.uses_existing_cluster else "kind",
            "kubernetesVersion": kubernetes_version,
            "nodeImage": None if settings.uses_existing_cluster else settings.kind_image,
        },
        "modes": [m.value for m in settings.mesh_modes],
        "timeoutScale": settings.timeout_scale,
        "profiles": [profiles[name].as_dict() for name in sorted(profiles)],
    }


def write_report(report: dict[str, Any], report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / REPORT_FILE
    path.write_text(yaml.safe_dump(report, sort_keys=False), encoding="utf-8")
    return path


def write_allure_environment(allure_dir: Path, settings: Settings, istio_version: str | None) -> None:
    """allure-pytest does not write environment.properties itself; the report's header reads it."""
    allure_dir.mkdir(parents=True, exist_ok=True)
    lines = {
        "harness.version": __version__,
        "istio.version": istio_version or ("planned " + settings.istio_version if settings.plan else "not detected"),
        "mesh.modes": ",".join(m.value for m in settings.mesh_modes),
        "cluster": "existing" if settings.uses_existing_cluster else f"kind ({settings.kind_image})",
        "plan": str(settings.plan).lower(),
    }
    text = "".join(f"{key}={value}\n" for key, value in lines.items())
    (allure_dir / "environment.properties").write_text(text, encoding="utf-8")
