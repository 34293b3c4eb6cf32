"""Reports of synthetic runs (tests/synthetic_run.py): valid against the published schema, complete, honest
about certifiability, with evidence that is hashed and bounded, and free of the planted secret."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from conformance.report.document import validate_report
from conformance.report.summary import CHECK_TABLE_HEADER, SUMMARY_FILE
from conformance.runtimes.failure_evidence import MAX_FILE_BYTES
from conformance.runtimes.planning import PLAN_FILE
from conformance.spec.catalogue import checks
from conformance.spec.model import Profile
from conformance.spec.record_texts import TEST_CA_ADAPTATION
from tests.plan_run import PlanRun
from tests.synthetic_run import SyntheticRun, synthetic_run


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> SyntheticRun:
    return synthetic_run(tmp_path_factory.mktemp("synthetic-full"))


def test_the_report_is_valid_as_yaml_and_as_json(full_run: SyntheticRun) -> None:
    validate_report(full_run.report)
    validate_report(full_run.report_json)
    assert full_run.report == full_run.report_json
    assert full_run.returncode == 1, full_run.stdout[-3000:]  # two checks failed


def test_every_kind_of_result_is_reported_with_its_reason(full_run: SyntheticRun) -> None:
    results = {c["id"]: (c["result"], c.get("reason")) for p in full_run.report["profiles"] for c in p["checks"]}
    assert results["EGW-01"] == ("passed", None)
    assert results["EGW-02"][0] == "failed" and results["EGW-02"][1].startswith("call failed: AssertionError: p1:")
    assert results["EGW-03"] == ("skipped", "the installed Istio has no egress gateway")
    assert results["AMB-X4"][0] == "not-applicable" and "ztunnel" in results["AMB-X4"][1]
    # NSD-01 has a test in scenarios/, which this run did not collect: left out, not "not implemented".
    assert results["NSD-01"] == (
        "not-selected",
        "left out of this run (by the paths it collected, -k, -m or --mesh-mode)",
    )
    sidecar = full_run.profile("EGRESS-SIDECAR")
    assert sidecar["summary"]["result"] == "failure"
    assert sidecar["failedChecks"] == ["EGW-02", "ETP-03"]
    assert sidecar["skippedChecks"] == ["EGW-03"]
    statistics = sidecar["summary"]["statistics"]
    assert (statistics["passed"], statistics["failed"], statistics["skipped"]) == (3, 2, 1)
    assert statistics["not-selected"] == len(checks(Profile.EGRESS_SIDECAR)) - 6
    assert statistics["not-implemented"] == 0
    not_passed = {c["id"]: c["reason"] for c in sidecar["notPassedChecks"]}
    assert set(not_passed) >= {"EGW-02", "EGW-03", "ETP-03", "NSD-01"} and all(not_passed.values())
    assert full_run.profile("EGRESS-AMBIENT")["summary"]["statistics"]["not-applicable"] == 1


def test_the_partial_run_is_not_certifiable_and_says_why_per_profile(full_run: SyntheticRun) -> None:
    run = full_run.report["run"]
    assert run["certifiable"] is False and run["certifiableProfiles"] == []
    profiles = {p["name"]: p for p in full_run.report["profiles"]}
    sidecar = profiles["EGRESS-SIDECAR"]
    assert sidecar["certifiable"] is False
    assert any(why.startswith("core checks were skipped") for why in sidecar["notCertifiableBecause"])


def test_header_names_the_implementation_harness_and_run(full_run: SyntheticRun) -> None:
    report = full_run.report
    assert report["implementation"]["organization"] == "example.com"
    assert report["implementation"]["source"] == "implementation.yaml"
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", report["run"]["id"])
    assert report["run"]["selection"] == {"markExpression": "egress", "keywordExpression": None}
    assert report["harness"]["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", report["harness"]["commit"])
    assert report["environment"]["kubernetes"]["provider"] == "existing"
    assert report["environment"]["modes"] == ["sidecar"]


def test_time_to_converge_per_check_and_probe(full_run: SyntheticRun) -> None:
    egw01 = full_run.check("EGW-01")
    assert egw01["convergenceSeconds"] == 1.5
    (probe,) = egw01["probes"]
    assert probe == {
        "id": "p1",
        "client": "default/sleep",
        "command": "curl -sI http://aliyun.com",
        "until": "converges",
        "expected": "http(301)",
        "outcome": "http(301)",
        "attempts": 4,
        "convergedAfterSeconds": 1.5,
    }
    # A negative check holds; it has no time to converge.
    assert full_run.check("ETP-02")["convergenceSeconds"] is None


def test_deviations_and_adaptations(full_run: SyntheticRun) -> None:
    deviations = {d["id"]: d for d in full_run.report["deviations"]}
    assert deviations["ETP-02"]["observed"] == ["p1: tls-reset"]
    # What the check expected instead is what its body asserted, in the printout's words: never prose.
    assert deviations["ETP-02"]["expected"] == [
        "p1: in mytest/sleep-a: curl -sI https://www.httpbin.org is denied and holds tls-reset"
    ]
    assert full_run.check("ETP-02")["deviation"]["expected"] == deviations["ETP-02"]["expected"]
    assert deviations["ETP-02"]["result"] == "passed"
    assert "connection refused" in deviations["ETP-02"]["reason"]
    assert "conn-refused, not tls-reset" in deviations["ETP-03"]["observed"][0]
    adaptations = full_run.report["adaptations"]
    applied = next(a for a in adaptations if a["id"] == "EGW-04")
    inherent = next(a for a in adaptations if a["id"] == "ETP-02")
    assert not [a for a in adaptations if not a.get("inherent") and a["id"] != "EGW-04"]
    # The gateway in this run carries the tlsMode label: EGW-04's plain-HTTP hop needed the harness's rule.
    assert applied["id"] == "EGW-04" and "tls.mode DISABLE" in applied["reason"]
    assert applied["manifests"] == ["scenarios/harness/gateway-plaintext.yaml"]
    assert full_run.check("EGW-04")["adaptations"] == [{k: applied[k] for k in ("reason", "manifests")}]
    # ETP-02's origins are signed by the run's test CA whenever it runs; its gateway-hop rule was not needed.
    assert (inherent["id"], inherent["reason"], inherent["inherent"]) == ("ETP-02", TEST_CA_ADAPTATION, True)


def test_failed_checks_leave_hashed_bounded_evidence(full_run: SyntheticRun) -> None:
    files = full_run.report["evidence"]["files"]
    by_check = {check_id: [f for f in files if f["id"] == check_id] for check_id in ("EGW-02", "ETP-03")}
    assert not [f for f in files if f["id"] not in by_check]  # only failed checks have evidence
    for entry in files:
        data = (full_run.report_dir / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"] <= MAX_FILE_BYTES
    what = {f["what"].split(" (")[0] for f in by_check["ETP-03"]}
    assert what >= {
        "recorded actions",
        "client default/nginx proxy log",
        "client default/nginx proxy-config listeners",
        "client default/nginx proxy-config routes",
        "client default/nginx proxy-config clusters",
        "egress-gateway istio-system/istio-egressgateway log",
        "egress-gateway istio-system/istio-egressgateway proxy-config listeners",
        "events of namespace default",
        "istioctl analyze of namespace istio-system",
    }
    log = next(f for f in by_check["EGW-02"] if "proxy log" in f["what"])
    assert log["truncated"] is True
    assert full_run.check("EGW-02")["evidence"]["files"] == [
        {k: v for k, v in f.items() if k not in ("id", "mode")} for f in by_check["EGW-02"]
    ]
    analyze = (full_run.report_dir / "evidence" / "EGW-02-sidecar" / "analyze-default.txt").read_text()
    assert analyze.startswith("$ istioctl analyze --namespace default --color=false --kubeconfig ")
    assert "# exit code 79" in analyze and "IST0134" in analyze


def test_a_planted_secret_never_reaches_any_report_file(full_run: SyntheticRun) -> None:
    key = full_run.planted_secret
    forms = [base64.b64encode(key.encode()).decode(), *[line for line in key.splitlines() if "-----" not in line]]
    written = [p for p in full_run.report_dir.rglob("*") if p.is_file()]
    assert len(written) > 20
    leaks = [(p.name, form[:12]) for p in written for form in forms if form in p.read_text(errors="replace")]
    assert leaks == []
    assert not [p for p in written if "PRIVATE KEY-----" in p.read_text(errors="replace")]
    # It was there to leak: in the failure message, the transcripts, the logs and the events.
    assert "<private key redacted>" in full_run.check("EGW-02")["reason"]
    assert (
        "<secret redacted>" in (full_run.report_dir / "evidence" / "EGW-02-sidecar" / "events-default.txt").read_text()
    )


def test_summary_has_one_row_per_check_then_the_deviations(full_run: SyntheticRun) -> None:
    summary = (full_run.report_dir / SUMMARY_FILE).read_text()
    assert summary == full_run.step_summary  # appended to $GITHUB_STEP_SUMMARY
    tables = summary.split("\n\n")
    first_table = next(t for t in tables if t.startswith("|"))
    assert first_table.splitlines()[0] == CHECK_TABLE_HEADER
    # Cells split on unescaped pipes: a reason may hold an escaped one.
    rows = [
        [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip()[1:-1])] for row in first_table.splitlines()[2:]
    ]
    assert {len(row) for row in rows} == {6}
    reported = [(c["id"], c.get("mode") or "—") for p in full_run.report["profiles"] for c in p["checks"]]
    assert [(row[0], row[1]) for row in rows] == reported
    assert rows[reported.index(("EGW-01", "sidecar"))] == ["EGW-01", "sidecar", "EGRESS-SIDECAR", "passed", "", "1.50"]
    assert summary.index("### Documentation deviations") > summary.index(CHECK_TABLE_HEADER)
    assert "| ETP-02 | sidecar |" in summary.split("### Documentation deviations")[1]


def test_allure_labels_steps_and_attachments(full_run: SyntheticRun) -> None:
    result = full_run.allure_result("EGW-04")
    labels = {(label["name"], label["value"]) for label in result["labels"]}
    assert {
        ("epic", "EGRESS-SIDECAR"),
        ("feature", "EGW"),
        ("story", "EGW-04"),
        ("tag", "sidecar"),
        ("tag", "seed-003"),
        ("severity", "critical"),
    } <= labels
    assert result["name"].startswith("EGW-04 A Gateway and a two-hop VirtualService")
    # The description names what the check expected, as its body recorded it.
    expected = result["description"].split("Expected on upstream Istio:", 1)[1].split("\n\n", 1)[0].split("\n")
    assert [line for line in expected if line] == [
        "- p1: in default/sleep: curl -sI http://aliyun.com converges to http(301)",
        "- egress-gateway istio-system/istio-egressgateway logs p1 with response_code=301",
    ]
    steps = [step["name"] for step in result["steps"]]
    assert steps[0] == "apply egw/service-entry.yaml, egw/gateway.yaml, egw/virtual-service.yaml"
    attachments = [a["name"] for step in result["steps"] for a in step.get("attachments", [])]
    assert "egw/service-entry.yaml + egw/gateway.yaml + egw/virtual-service.yaml" in attachments
    assert "p1: curl -sI http://aliyun.com" in attachments
    assert "access-log entry" in attachments
    transcript = next(
        a
        for step in result["steps"]
        for a in step.get("attachments", [])
        if a["name"] == "p1: curl -sI http://aliyun.com"
    )
    text = (full_run.report_dir / "allure-results" / transcript["source"]).read_text()
    assert "# outcome: http(301)" in text and "# converged 1.500s" in text and "## attempt 4" in text


def test_allure_failure_evidence_and_categories(full_run: SyntheticRun) -> None:
    failed = full_run.allure_result("ETP-03")
    assert failed["status"] == "failed"
    assert "documentation deviation of ETP-03" in failed["statusDetails"]["message"]
    attached = {a["name"] for a in failed.get("attachments", [])}
    assert "client default/nginx proxy-config listeners" in attached
    results = full_run.report_dir / "allure-results"
    categories = json.loads((results / "categories.json").read_text())
    assert [c["name"] for c in categories] == ["Infrastructure", "Documentation deviation", "Product defect"]
    properties = dict(line.split("=", 1) for line in (results / "environment.properties").read_text().splitlines())
    assert properties["implementation"] == "example.com/example-mesh 2.4.1"
    assert properties["run.id"] == full_run.report["run"]["id"]


def test_a_run_narrowed_by_k_is_not_certifiable(tmp_path: Path) -> None:
    narrowed = synthetic_run(tmp_path, "-k", "EGW-01")
    validate_report(narrowed.report)
    assert "narrowed by -k 'EGW-01'" in narrowed.report["run"]["notCertifiableBecause"]
    assert narrowed.check("EGW-02")["result"] == "not-selected"


def test_keep_on_failure_stops_leaves_the_check_in_place_and_says_how_to_inspect(tmp_path: Path) -> None:
    kept = synthetic_run(tmp_path, "--keep-on-failure")
    validate_report(kept.report)
    assert kept.returncode == 1
    assert kept.check("EGW-01")["result"] == "passed"
    assert kept.check("EGW-02")["result"] == "failed"
    # The run stopped after the failed check.
    assert kept.check("EGW-04")["result"] == "not-run"
    (sidecar,) = [p for p in kept.report["profiles"] if p["name"] == "EGRESS-SIDECAR"]
    assert any(
        why.startswith("core checks did not run: ") and "EGW-04" in why for why in sidecar["notCertifiableBecause"]
    )
    assert kept.report["run"]["keptForInspection"] == "--keep-on-failure: EGW-02 (sidecar) failed"
    # EGW-02's ServiceEntry was not removed; the passed check before it cleaned up as usual.
    assert not [line for line in kept.deleted if "external-svc-http" in line]
    summary = kept.stdout.split("kept for inspection (--keep-on-failure)", 1)[1]
    assert "kubeconfig: " in summary and "(context synthetic)" in summary
    assert "namespaces: default" in summary
    assert "istioctl proxy-config listeners sleep-planned.default --kubeconfig" in summary
    assert "kubectl --kubeconfig" in summary and "-n default get all,serviceentries" in summary


def test_without_keep_on_failure_the_failed_check_is_cleaned_up(full_run: SyntheticRun) -> None:
    assert [line for line in full_run.deleted if "external-svc-http" in line]


def test_plan_run_report_is_valid_and_not_certifiable(catalogue_plan: PlanRun) -> None:
    validate_report(catalogue_plan.report)
    validate_report(json.loads((catalogue_plan.report_dir / "conformance-report.json").read_text()))
    assert "plan run: nothing was carried out on a cluster" in catalogue_plan.report["run"]["notCertifiableBecause"]
    assert catalogue_plan.report["environment"]["observed"] is False
    assert catalogue_plan.report["evidence"] == {"directory": "evidence", "files": [], "errors": []}
    assert not (catalogue_plan.report_dir / "evidence").exists()
    assert (catalogue_plan.report_dir / PLAN_FILE).is_file()
