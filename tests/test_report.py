"""Profile verdicts: a skip makes a profile partial, never a success; a failure makes it a failure."""

from __future__ import annotations

import datetime as dt

from conformance.report import CheckRecord, CheckResult, ProfileResult, ProfileSummary, build_report
from conformance.settings import Settings


def record(check_id: str, result: CheckResult, profile: str = "EGRESS-SIDECAR") -> CheckRecord:
    return CheckRecord(check_id, f"scenarios/x.py::{check_id}", profile, "sidecar", result)


def test_verdicts() -> None:
    assert ProfileSummary("P", [record("A", CheckResult.PASSED)]).result is ProfileResult.SUCCESS
    assert (
        ProfileSummary("P", [record("A", CheckResult.PASSED), record("B", CheckResult.SKIPPED)]).result
        is ProfileResult.PARTIAL
    )
    assert (
        ProfileSummary("P", [record("A", CheckResult.FAILED), record("B", CheckResult.SKIPPED)]).result
        is ProfileResult.FAILURE
    )
    assert ProfileSummary("P", []).result is ProfileResult.PARTIAL


def test_report_header_names_versions_and_cluster() -> None:
    now = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
    report = build_report([record("EGW-01", CheckResult.PASSED)], Settings(), kubernetes_version="v1.35.0", now=now)
    assert report["date"] == "2026-11-22T00:00:00+00:00"
    assert report["implementation"] == {
        "project": "istio",
        # Nothing was installed or detected: the report claims no version, only the requested one.
        "version": None,
        "requestedVersion": "1.30.3",
        "installedBy": "harness",
    }
    assert report["cluster"]["provider"] == "kind"
    assert report["cluster"]["kubernetesVersion"] == "v1.35.0"
    assert report["cluster"]["nodeImage"].startswith("kindest/node:v1.35.0@sha256:")
    statistics = report["profiles"][0]["summary"]["statistics"]
    assert (statistics["passed"], statistics["failed"], statistics["skipped"]) == (1, 0, 0)
