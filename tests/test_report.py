"""Profile verdicts, the report header, certifiability, and the published schema."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import yaml

from conformance.report.certification import (
    PLANNED_RUN_FACTS,
    ProfileResult,
    ProfileSummary,
    RunStatus,
    Selection,
    certifiable,
)
from conformance.report.check_records import CheckRecord, CheckResult
from conformance.report.document import (
    REPORT_SCHEMA,
    ReportInvalid,
    RunInfo,
    build_report,
    validate_report,
    write_report,
)
from conformance.report.environment import DataPlaneFacts, RunEnvironment, RunningImage
from conformance.settings.implementation import Implementation
from conformance.settings.options import IstioSource, MeshMode
from conformance.settings.run_settings import Settings
from conformance.spec.catalogue import CATALOGUE

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)


def record(check_id: str, result: CheckResult, profile: str = "EGRESS-SIDECAR", **extra: object) -> CheckRecord:
    reason = None if result is CheckResult.PASSED else f"{result.value} for a reason"
    return CheckRecord(check_id, f"scenarios/x.py::{check_id}", profile, "sidecar", result, reason, **extra)  # type: ignore[arg-type]


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


def test_report_header_names_versions_and_environment() -> None:
    environment = RunEnvironment(kubernetes_version="v1.35.0")
    report = build_report([record("EGW-01", CheckResult.PASSED)], Settings(), environment=environment, now=NOW)
    validate_report(report)
    assert report["date"] == "2026-11-22T00:00:00+00:00"
    # The harness installs upstream Istio: it describes it, but claims no version it has not installed.
    assert report["implementation"]["project"] == "istio"
    assert report["implementation"]["version"] is None
    istio = report["environment"]["istio"]
    assert (istio["requestedVersion"], istio["installedBy"]) == ("1.30.3", "harness")
    assert report["environment"]["kubernetes"] == {"version": "v1.35.0", "provider": "kind", "nodes": []}
    assert report["environment"]["kind"]["nodeImage"].startswith("kindest/node:v1.35.0@sha256:")
    statistics = report["profiles"][0]["summary"]["statistics"]
    assert (statistics["passed"], statistics["failed"], statistics["skipped"]) == (1, 0, 0)


def test_implementation_file_describes_the_implementation() -> None:
    vendor = Implementation(
        "example.com", "example-mesh", "https://example.com/mesh", "2.4.1", ("@example/mesh",), "implementation.yaml"
    )
    settings = replace(Settings(), implementation=vendor, istio_source=IstioSource.EXISTING)
    environment = RunEnvironment(istio_version="1.30.3")
    report = build_report([record("EGW-01", CheckResult.PASSED)], settings, environment=environment, now=NOW)
    assert report["implementation"] == {
        "organization": "example.com",
        "project": "example-mesh",
        "url": "https://example.com/mesh",
        "version": "2.4.1",
        "contact": ["@example/mesh"],
        "source": "implementation.yaml",
    }
    # What was found in the cluster stays beside what the vendor claims.
    assert report["environment"]["istio"]["version"] == "1.30.3"
    assert report["environment"]["istio"]["installedBy"] == "existing"


def test_every_non_passed_check_carries_its_reason() -> None:
    records = [
        record("EGW-01", CheckResult.PASSED),
        record("EGW-02", CheckResult.FAILED),
        record("EGW-03", CheckResult.SKIPPED),
        record("NSD-01", CheckResult.NOT_IMPLEMENTED),
    ]
    (profile,) = build_report(records, Settings(), now=NOW)["profiles"]
    assert [(c["id"], c["reason"]) for c in profile["notPassedChecks"]] == [
        ("EGW-02", "failed for a reason"),
        ("EGW-03", "skipped for a reason"),
        ("NSD-01", "not-implemented for a reason"),
    ]
    assert profile["failedChecks"] == ["EGW-02"]
    assert profile["skippedChecks"] == ["EGW-03"]


def test_a_plan_run_is_not_certifiable_because_its_kind_says_so() -> None:
    reasons = certifiable([], Settings(), RunStatus.COMPLETED, Selection(), PLANNED_RUN_FACTS)
    assert reasons[0] == "plan run: nothing was carried out on a cluster"
    # A plan installs nothing: the reason a harness-installed Istio certifies nothing is not given.
    assert not [r for r in reasons if "installed upstream Istio itself" in r]
    report = build_report([], Settings(), run=RunInfo(run_id="r", kind=PLANNED_RUN_FACTS))
    assert report["run"]["plan"] is True and report["run"]["notCertifiableBecause"][0].startswith("plan run")
    assert build_report([], Settings())["run"]["plan"] is False


@pytest.mark.parametrize(
    "settings, status, selection, records, expected",
    [
        (Settings(), RunStatus.ABORTED, Selection(), [], "the run stopped before its checks ran"),
        (Settings(), RunStatus.COMPLETED, Selection("egress and sidecar"), [], "narrowed by -m 'egress and sidecar'"),
        (Settings(), RunStatus.COMPLETED, Selection("egress", "EGW-04"), [], "narrowed by -k 'EGW-04'"),
        (Settings(), RunStatus.COMPLETED, Selection(), [], "the harness installed upstream Istio itself"),
        (
            replace(Settings(), istio_overlay=Path("overlay.yaml")),
            RunStatus.COMPLETED,
            Selection(),
            [],
            "--istio-overlay overlay.yaml, which changes Istio's defaults",
        ),
        (
            Settings(),
            RunStatus.COMPLETED,
            Selection(),
            [record("XW-01", CheckResult.FAILED, "EXTERNAL-WORLD")],
            "the harness's checks of its own external world failed (XW-01)",
        ),
        (
            replace(Settings(), istio_source=IstioSource.EXISTING),
            RunStatus.COMPLETED,
            Selection(),
            [],
            "pass --implementation-file",
        ),
    ],
)
def test_not_certifiable_with_the_reason(
    settings: Settings, status: RunStatus, selection: Selection, records: list[CheckRecord], expected: str
) -> None:
    reasons = certifiable(records, settings, status, selection)
    assert any(expected in reason for reason in reasons), reasons


VENDOR = Implementation("example.com", "mesh", "https://example.com", "2.4.1", ("@example",), "implementation.yaml")
EXISTING = replace(Settings(), istio_source=IstioSource.EXISTING, implementation=VENDOR)


def test_a_profile_is_certifiable_when_every_core_check_of_it_ran_and_passed() -> None:
    sidecar = [record(c.id, CheckResult.PASSED) for c in CATALOGUE.values() if c.profile.value == "EGRESS-SIDECAR"]
    ambient = [
        record(c.id, CheckResult.NOT_SELECTED, "EGRESS-AMBIENT")
        for c in CATALOGUE.values()
        if c.profile.value == "EGRESS-AMBIENT" and not c.not_applicable
    ]
    settings = replace(EXISTING, mesh_modes=(MeshMode.SIDECAR,))
    report = build_report([*sidecar, *ambient], settings, run=RunInfo("r1"), now=NOW)
    validate_report(report)
    profiles = {p["name"]: p for p in report["profiles"]}
    assert profiles["EGRESS-SIDECAR"]["certifiable"] is True
    assert "notCertifiableBecause" not in profiles["EGRESS-SIDECAR"]
    (why,) = profiles["EGRESS-AMBIENT"]["notCertifiableBecause"]
    assert why.startswith("its checks were not selected (this run: --mesh-mode sidecar")
    assert (report["run"]["certifiable"], report["run"]["certifiableProfiles"]) == (True, ["EGRESS-SIDECAR"])


@pytest.mark.parametrize(
    "result, expected",
    [
        (CheckResult.FAILED, "core checks failed: EGW-02"),
        (CheckResult.SKIPPED, "core checks were skipped: EGW-02"),
        (CheckResult.NOT_RUN, "core checks did not run: EGW-02"),
        (CheckResult.NOT_IMPLEMENTED, "core checks are not implemented: EGW-02"),
    ],
)
def test_a_profile_with_a_core_check_that_did_not_pass_is_not_certifiable(result: CheckResult, expected: str) -> None:
    records = [record("EGW-01", CheckResult.PASSED), record("EGW-02", result)]
    report = build_report(records, EXISTING, run=RunInfo("r1"), now=NOW)
    validate_report(report)
    (profile,) = report["profiles"]
    assert profile["certifiable"] is False and profile["notCertifiableBecause"] == [expected]
    assert report["run"]["certifiable"] is False
    assert report["run"]["notCertifiableBecause"] == [
        "no profile is certifiable: see each profile's notCertifiableBecause"
    ]


def test_a_run_level_reason_makes_every_profile_uncertifiable_and_is_named_in_each() -> None:
    report = build_report([record("EGW-01", CheckResult.PASSED)], Settings(), run=RunInfo("r1"), now=NOW)
    (profile,) = report["profiles"]
    assert any("the harness installed upstream Istio itself" in why for why in profile["notCertifiableBecause"])
    assert report["run"]["certifiableProfiles"] == []


def test_environment_reports_the_image_ids_the_kubelet_runs() -> None:
    image = RunningImage(
        "docker.io/istio/proxyv2:1.30.3",
        "docker.io/istio/proxyv2@sha256:" + "a" * 64,
        {"istio-system"},
        {"istio-proxy"},
    )
    environment = RunEnvironment(
        data_planes={
            "sidecar": DataPlaneFacts("sidecar", {"plugins": ["kindnet"], "istioCni": False}, [image], ["istio-system"])
        }
    )
    report = build_report([record("EGW-01", CheckResult.PASSED)], Settings(), environment=environment, now=NOW)
    validate_report(report)
    (plane,) = report["environment"]["dataPlanes"]
    assert plane["images"][0]["digest"] == "sha256:" + "a" * 64
    assert plane["cni"] == {"plugins": ["kindnet"], "istioCni": False}


def test_schema_refuses_what_the_report_must_not_say() -> None:
    report = build_report([record("EGW-02", CheckResult.FAILED)], Settings(), now=NOW)
    validate_report(report)
    broken = json.loads(json.dumps(report))
    del broken["profiles"][0]["checks"][0]["reason"]
    with pytest.raises(ReportInvalid, match="'reason' is a required property"):
        validate_report(broken)
    claims = json.loads(json.dumps(report))
    assert claims["run"]["certifiable"] is False
    del claims["run"]["notCertifiableBecause"]  # not certifiable without saying why
    with pytest.raises(ReportInvalid, match="notCertifiableBecause"):
        validate_report(claims)
    profile = json.loads(json.dumps(report))
    del profile["profiles"][0]["notCertifiableBecause"]
    with pytest.raises(ReportInvalid, match="notCertifiableBecause"):
        validate_report(profile)
    evidence = json.loads(json.dumps(report))
    bad_file = {"path": "evidence/x/y.log", "what": "log", "sha256": "not-a-digest", "bytes": 1, "truncated": False}
    evidence["evidence"]["files"].append({"id": "EGW-02", "mode": "sidecar", **bad_file})
    with pytest.raises(ReportInvalid, match="sha256"):
        validate_report(evidence)


def test_written_report_is_yaml_and_json_of_the_same_document(tmp_path: Path) -> None:
    report = build_report([record("EGW-01", CheckResult.PASSED)], Settings(), now=NOW)
    yaml_path, json_path = write_report(report, tmp_path)
    assert yaml.safe_load(yaml_path.read_text()) == json.loads(json_path.read_text()) == report


def test_published_schema_is_itself_valid() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(REPORT_SCHEMA.read_text()))


def test_inherent_adaptations_are_the_unconditional_ones() -> None:
    from conformance.report.check_records import inherent_adaptations
    from conformance.spec.catalogue import lookup
    from conformance.spec.record_texts import GATEWAY_MTLS_ADAPTATION, TEST_CA_ADAPTATION

    reasons = [a["reason"] for a in inherent_adaptations(lookup("ETP-02"))]
    assert reasons == [TEST_CA_ADAPTATION] and GATEWAY_MTLS_ADAPTATION in lookup("ETP-02").adaptations
    assert inherent_adaptations(lookup("EGW-04")) == []


def test_an_adaptation_the_run_recorded_is_listed_once() -> None:
    """ETP-02's run applies the test-CA DestinationRule itself: the catalogue's inherent entry of the same
    adaptation must not be added a second time, and the recorded one keeps its manifests."""
    from conformance.engine.actions import CheckActions
    from conformance.engine.check_run import Adaptation, CheckRun
    from conformance.report.check_records import run_adaptations
    from conformance.spec.catalogue import lookup
    from conformance.spec.record_texts import TEST_CA_ADAPTATION

    check = lookup("ETP-02")
    run = CheckRun(check, CheckActions(check.id, "x::y", "sidecar", check.profile.value, check.title))
    run.adaptations.append(Adaptation(TEST_CA_ADAPTATION, ("scenarios/etp/native/tls-origination.yaml",)))
    listed = run_adaptations(run, ran=True)
    assert [a["reason"] for a in listed] == [TEST_CA_ADAPTATION]
    assert listed[0]["manifests"] == ["scenarios/etp/native/tls-origination.yaml"]
    assert run_adaptations(CheckRun(check, run.actions), ran=True) == [
        {"reason": TEST_CA_ADAPTATION, "manifests": [], "inherent": True}
    ]
    assert run_adaptations(CheckRun(check, run.actions), ran=False) == []
