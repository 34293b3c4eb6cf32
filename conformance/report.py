"""The machine-readable conformance report, fit for vendor certification.

Every e2e check that was collected is in the report — passed, failed or skipped with its reason — so a
partial run can never look like a full pass. Shape follows the Gateway API ConformanceReport: a summary
per profile (success / partial / failure with statistics), then every check with its ID.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conformance import __version__
from conformance.settings import Settings

REPORT_FILE = "conformance-report.yaml"
REPORT_API_VERSION = "egress-conformance.io/v1alpha1"

#: Marker -> profile name in the report.
PROFILE_MARKERS = {
    "egress_sidecar": "EGRESS-SIDECAR",
    "egress_ambient": "EGRESS-AMBIENT",
    "external_world": "EXTERNAL-WORLD",
}
UNPROFILED = "UNPROFILED"


class CheckResult(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class ProfileResult(enum.StrEnum):
    SUCCESS = "success"
    #: Nothing failed but some checks were skipped: not a certification-grade run.
    PARTIAL = "partial"
    FAILURE = "failure"


@dataclass
class CheckRecord:
    check_id: str
    nodeid: str
    profile: str
    mode: str | None
    result: CheckResult
    reason: str | None = None
    duration: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.check_id, "test": self.nodeid, "result": self.result.value}
        if self.mode:
            data["mode"] = self.mode
        if self.reason:
            data["reason"] = self.reason
        data["durationSeconds"] = round(self.duration, 3)
        return data


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
        if self.count(CheckResult.SKIPPED) or not self.checks:
            return ProfileResult.PARTIAL
        return ProfileResult.SUCCESS

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": {
                "result": self.result.value,
                "statistics": {
                    "passed": self.count(CheckResult.PASSED),
                    "failed": self.count(CheckResult.FAILED),
                    "skipped": self.count(CheckResult.SKIPPED),
                },
            },
            "failedChecks": sorted({c.check_id for c in self.checks if c.result is CheckResult.FAILED}),
            "skippedChecks": [
                {"id": c.check_id, "mode": c.mode, "reason": c.reason}
                for c in self.checks
                if c.result is CheckResult.SKIPPED
            ],
            "checks": [c.as_dict() for c in self.checks],
        }


def build_report(
    records: Iterable[CheckRecord],
    settings: Settings,
    *,
    istio_version: str | None = None,
    kubernetes_version: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    profiles: dict[str, ProfileSummary] = {}
    for record in records:
        profiles.setdefault(record.profile, ProfileSummary(record.profile)).checks.append(record)
    return {
        "apiVersion": REPORT_API_VERSION,
        "kind": "ConformanceReport",
        "date": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        "harness": {"name": "egress-conformance", "version": __version__},
        "implementation": {
            "project": "istio",
            "version": istio_version or settings.istio_version,
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
        "istio.version": istio_version or settings.istio_version,
        "mesh.modes": ",".join(m.value for m in settings.mesh_modes),
        "cluster": "existing" if settings.uses_existing_cluster else f"kind ({settings.kind_image})",
    }
    text = "".join(f"{key}={value}\n" for key, value in lines.items())
    (allure_dir / "environment.properties").write_text(text, encoding="utf-8")
