"""Results that cannot be misread: a plan is not a pass in any channel, an infrastructure failure stops the run
once, every bad input is named before anything is created, a reason keeps its fix, a check is filed under
its ID whatever happened to it, selection matches what the report files, and the plan shows no invented
value as a fact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from conformance import PROJECT_ROOT
from conformance.core.processes import run_bounded
from conformance.harness.collector import ORACLE_SCHEMA, _failure_summary, allure_environment
from conformance.platform.binaries import BinaryError, DownloadSpec, ensure_download
from conformance.report.summary import render_summary
from tests.plan_run import PlanRun
from tests.test_binaries import ReleaseServer

E2E = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "egress"]


def harness(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EGRESS_")}
    # A cache of its own: a run that creates (or fails to create) a kind cluster replaces the kubeconfig under
    # the cache, and the user's (or a real run's, alongside) must never be touched by a test.
    with tempfile.TemporaryDirectory(prefix="egress-harness-cache-") as cache:
        return subprocess.run(
            [*E2E, *args],
            cwd=PROJECT_ROOT,
            env={**clean, "EGRESS_CACHE_DIR": cache, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def allure_results(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(directory.glob("*-result.json"))]


# ---------------------------------------------------------------------------------- 1. a plan is not a pass


def test_a_plan_reads_as_planned_in_pytest_junit_allure_the_report_and_the_summary(catalogue_plan: PlanRun) -> None:
    closing = catalogue_plan.stdout.strip().splitlines()[-1]
    assert " passed" not in closing and " skipped" in closing, closing
    testcases = ElementTree.parse(catalogue_plan.report_dir / "junit.xml").getroot().iter("testcase")
    scenario_cases = [case for case in testcases if "scenarios" in (case.get("classname") or "")]
    assert scenario_cases
    for case in scenario_cases:
        skipped = case.find("skipped")
        assert skipped is not None and "planned" in (skipped.get("message") or ""), case.get("name")
    results = allure_results(catalogue_plan.report_dir / "allure-results")
    assert results and {result["status"] for result in results} == {"skipped"}
    for result in results:
        tags = {label["value"] for label in result["labels"] if label["name"] == "tag"}
        assert "planned" in tags
    checks = [c for p in catalogue_plan.report["profiles"] for c in p["checks"]]
    assert not any(c["result"] == "passed" for c in checks)
    assert {c["result"] for c in checks} <= {"planned", "not-applicable", "not-implemented", "skipped"}
    summary = (catalogue_plan.report_dir / "conformance-summary.md").read_text()
    assert "plan run for Istio 1.30.3" in summary and "| passed |" not in summary


def test_the_html_overview_says_planned_and_certifiability_per_profile(catalogue_plan: PlanRun) -> None:
    properties = (catalogue_plan.report_dir / "allure-results" / "environment.properties").read_text()
    assert "run.kind=planned (nothing ran on a cluster)" in properties
    assert "certifiable.EGRESS-SIDECAR=no: plan run: nothing was carried out on a cluster" in properties
    assert "deviations=" in properties and "ETP-02 (sidecar)" in properties


# ------------------------------------------------------------------------ 2. an infrastructure failure stops once


def test_a_kind_that_cannot_create_the_cluster_stops_the_run_once_and_the_report_is_aborted(
    tmp_path: Path,
) -> None:
    kind = tmp_path / "kind"
    kind.write_text(
        "#!/bin/sh\n"
        'case "$1" in version) echo "kind v0.31.0 go1.25.5 linux/amd64";; get) exit 0;;\n'
        '  create) echo "ERROR: failed to create cluster: node image not present" >&2; exit 1;; esac\n'
    )
    kind.chmod(0o755)
    docker = tmp_path / "docker"
    docker.write_text('#!/bin/sh\n[ "$1" = info ] && exit 0\nexit 0\n')
    docker.chmod(0o755)
    report_dir = tmp_path / "reports"
    result = harness(
        "--mesh-mode",
        "sidecar",
        "--kind-bin",
        str(kind),
        f"--report-dir={report_dir}",
        env={"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output[-3000:]
    assert output.count("failed to create cluster: node image not present") <= 2, output[-3000:]
    assert "Traceback" not in output
    report = yaml.safe_load((report_dir / "conformance-report.yaml").read_text())
    assert report["run"]["status"] == "aborted" and report["run"]["certifiable"] is False
    assert report["environment"]["observed"] is False
    assert "node image not present" in report["run"]["reason"]


# --------------------------------------------------------------------------- 4. every input named, nothing made


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--kind-bin", "/bin/true"], "--kind-bin: /usr/bin/true is not kind"),
        (["--istioctl-bin", "/bin/echo"], "--istioctl-bin: /usr/bin/echo is not istioctl"),
        (["--cache-dir", "/proc/egress-cache"], "--cache-dir: '/proc/egress-cache' cannot be created or written"),
        (["--kube-context", "x"], "--kube-context names a context of --kubeconfig, which is not given"),
        (["--plan-gateway", "labelled"], "--plan-gateway says which egress gateway a plan assumes"),
        (["--istio", "existing"], "--istio existing tests the Istio installed on a cluster"),
    ],
)
def test_a_bad_input_stops_the_run_with_exit_4_naming_the_option(args: list[str], named: str, tmp_path: Path) -> None:
    result = harness(*args, f"--report-dir={tmp_path / 'reports'}")
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output[-2000:]
    assert named.replace("/usr/bin/", "/bin/") in output.replace("/usr/bin/", "/bin/"), output[-2000:]
    assert "Traceback" not in output
    assert not (tmp_path / "reports").exists()


def test_a_cache_dir_that_is_a_file_is_named(tmp_path: Path) -> None:
    cache = tmp_path / "cache-file"
    cache.write_text("not a directory")
    result = harness("--cache-dir", str(cache), f"--report-dir={tmp_path / 'reports'}")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"--cache-dir: '{cache}' lies under" in result.stdout + result.stderr or "--cache-dir" in result.stderr


def test_a_kubeconfig_with_plan_is_refused_rather_than_silently_ignored(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    result = harness("--plan", "--kubeconfig", str(kubeconfig))
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--kubeconfig: a --plan run walks the checks without any cluster" in result.stdout + result.stderr


def test_an_istio_release_that_does_not_exist_is_named_by_its_option(tmp_path: Path) -> None:
    server = ReleaseServer()
    try:
        spec = DownloadSpec(
            name="istioctl",
            version="1.30.99",
            url=server.url("/1.30.99/istioctl.tar.gz"),
            checksum_url=server.url("/1.30.99/istioctl.tar.gz.sha256"),
            archive_member="istioctl",
            version_option="--istio-version",
        )
        with pytest.raises(BinaryError) as error:
            ensure_download(spec, tmp_path)
    finally:
        server.close()
    message = str(error.value)
    assert message.startswith("istioctl 1.30.99 (chosen by --istio-version) is not published: ")
    assert "check --istio-version (it must name a released version), or install istioctl yourself" in message
    assert not list(tmp_path.rglob("istioctl"))


def test_images_list_names_an_unsupported_istio_version_with_exit_4() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conformance.images.loading", "list", "--istio-version", "1.28.0"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 4
    assert "argument --istio-version: Istio 1.28.0 is not supported" in result.stderr
    assert "Traceback" not in result.stderr and not result.stdout


# ------------------------------------------------------------------------------- 5. the fix is never cut off


def test_a_failure_reason_keeps_its_whole_first_line_and_the_summary_keeps_it_too() -> None:
    fix = "install kind v0.31.0 from https://kind.sigs.k8s.io and pass --kind-bin PATH"
    long = "no container engine: `docker info` failed (exit code 1: " + "x" * 400 + f"): {fix}"

    class Crash:
        message = long + "\nTraceback details follow"

    class Longrepr:
        reprcrash = Crash()

    class Report:
        longrepr = Longrepr()
        longreprtext = ""

    assert _failure_summary(Report()) == long  # type: ignore[arg-type]
    report = {
        "implementation": {"project": "istio", "version": "1.30.3"},
        "run": {
            "id": "r",
            "plan": False,
            "certifiable": False,
            "notCertifiableBecause": [long],
            "certifiableProfiles": [],
        },
        "date": "2026-12-07",
        "harness": {"version": "0.1.0", "commit": None},
        "environment": {"istio": {"requestedVersion": "1.30.3"}},
        "profiles": [
            {
                "name": "EGRESS-SIDECAR",
                "summary": {"result": "failure"},
                "certifiable": False,
                "notCertifiableBecause": [long],
                "checks": [{"id": "EGW-01", "mode": "sidecar", "result": "failed", "reason": long}],
            }
        ],
        "deviations": [],
        "evidence": {"files": [], "errors": [], "directory": "evidence"},
    }
    assert render_summary(report).count(fix) == 3


# -------------------------------------------------------------- 6. a check errored in set-up keeps its labels

SETUP_ERROR = """
import pytest
from conformance.spec.catalogue import stand_in

@pytest.fixture
def broken():
    raise RuntimeError("set-up failed")

@stand_in("EGW-01")
def test_egw01(mesh, broken):
    pass
"""


def test_a_check_that_errored_in_set_up_is_filed_under_its_profile_family_and_id(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_setup=SETUP_ERROR)
    allure_dir, junit = tmp_path / "allure", tmp_path / "junit.xml"
    pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "-m",
        "egress",
        "--plan",
        "--mesh-mode",
        "sidecar",
        f"--alluredir={allure_dir}",
        f"--junitxml={junit}",
        f"--report-dir={tmp_path / 'reports'}",
    ).assert_outcomes(errors=1)
    (result,) = allure_results(allure_dir)
    labels = {(label["name"], label["value"]) for label in result["labels"]}
    assert {("epic", "EGRESS-SIDECAR"), ("feature", "EGW"), ("story", "EGW-01")} <= labels
    properties = {p.get("name"): p.get("value") for p in ElementTree.parse(junit).getroot().iter("property")}
    assert properties == {"check": "EGW-01", "profile": "EGRESS-SIDECAR"}


# ------------------------------------------------------------------------------------- 8. selection matches


def test_egress_and_sidecar_selects_every_check_the_report_files_as_sidecar() -> None:
    result = harness("-m", "egress and sidecar", "--collect-only", "-q")
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert any("test_external_world.py" in line for line in collected), result.stdout[-2000:]
    assert not any("[ambient]" in line for line in collected)


def test_k_naming_a_not_applicable_check_says_why_nothing_ran() -> None:
    result = harness("--plan", "-k", "AMB-X4")
    assert result.returncode == pytest.ExitCode.NO_TESTS_COLLECTED
    assert "AMB-X4 has no test to run: not applicable: ztunnel does not implement" in result.stdout


# ----------------------------------------------------------------- 9. invented values are not shown as facts


def test_the_plan_printout_shows_placeholders_not_invented_addresses(catalogue_plan: PlanRun) -> None:
    printed = catalogue_plan.stdout + catalogue_plan.stderr
    assert "downstream_remote_address=<default/sleep pod IP>" in printed
    assert "upstream_host=*:443" in printed
    assert "10.244.0.2" not in printed and "10.96.100." not in printed


# -------------------------------------------------------------------- 10. long builds say they are running


def test_a_long_command_says_it_is_still_running() -> None:
    beats: list[float] = []
    started = time.monotonic()
    result = run_bounded(["sleep", "1"], 10, heartbeat=beats.append, heartbeat_seconds=0.3)
    assert result.returncode == 0 and time.monotonic() - started < 5
    assert len(beats) >= 2 and beats == sorted(beats)


# ------------------------------------------------------------------------ 11. the oracle's file has a schema


def test_oracle_json_has_a_published_schema_that_real_verdicts_follow(tmp_path: Path) -> None:
    schema = json.loads(ORACLE_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    document = {
        "istioBranch": "1.30",
        "istioModule": "istio.io/istio@v0.0.0-x",
        "summary": {"agrees": 1, "disagrees": 0, "not-predicted": 1},
        "checks": [
            {
                "id": "EGW-04",
                "mode": "sidecar",
                "oracle": "agrees",
                "probes": [
                    {
                        "probe": "p1",
                        "oracle": "agrees",
                        "predictedPath": "sidecar -> gateway",
                        "predictedOutcome": "http(301)",
                    }
                ],
            },
            {"id": "NSD-06", "mode": "sidecar", "oracle": "not-predicted", "reasons": ["NetworkPolicy"]},
        ],
    }
    jsonschema.validate(document, schema)
    document["checks"][0]["oracle"] = "probably"  # type: ignore[index]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)
    overview = allure_environment(
        {
            "run": {"id": "r", "plan": True, "certifiable": False, "notCertifiableBecause": ["plan run"]},
            "implementation": {"organization": "istio", "project": "istio", "version": None},
            "harness": {"version": "0.1.0", "commit": None},
            "profiles": [],
            "deviations": [],
            "environment": {
                "istio": {"version": None, "requestedVersion": "1.30.3", "installedBy": "harness", "installMethod": {}},
                "dataPlanes": [],
                "modes": ["sidecar"],
                "kind": None,
                "kubernetes": {"version": None, "provider": "kind"},
            },
        },
        {"agrees": 1, "disagrees": 0, "not-predicted": 1},
    )
    assert overview["oracle"] == "agrees 1, disagrees 0, not-predicted 1"
