"""Plan mode: every implemented check walked without a cluster, recorded as plan.json and reported."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance import PROJECT_ROOT
from conformance.checks.egress_policy import REPORT_KEY
from conformance.checks.policy_mapping import mapping_record
from conformance.core.redaction import REDACTED
from conformance.core.timeouts import DEFAULT_TIMEOUTS
from conformance.engine.runtime import Dataplane, WorkloadSpec
from conformance.runtimes.planning import PlanRuntime, overlay_egress_gateway, planned_host_addresses, validate_plan
from conformance.settings.options import MeshMode
from conformance.spec.catalogue import CATALOGUE
from conformance.world.workloads import FRONTEND_SLEEP, FRONTEND_SLEEP_WITHOUT_SIDECAR, WORKLOADS
from tests.plan_run import PlanRun, run_plan

GOLDEN = PROJECT_ROOT / "tests" / "data" / "golden" / "plan"
#: Set to rewrite the golden files from the current plan (then review the diff before committing).
UPDATE_GOLDEN = os.environ.get("EGRESS_UPDATE_GOLDEN") == "1"


def test_plan_is_valid_against_the_published_schema(catalogue_plan: PlanRun) -> None:
    validate_plan(catalogue_plan.plan)
    assert catalogue_plan.plan["egressGateway"]["tlsModeLabel"] is False


def test_plan_report_lists_every_catalogue_check(catalogue_plan: PlanRun) -> None:
    listed = {c["id"] for p in catalogue_plan.report["profiles"] for c in p["checks"]}
    assert listed == set(CATALOGUE)
    results = {c["id"]: c["result"] for p in catalogue_plan.report["profiles"] for c in p["checks"]}
    assert results["AMB-X4"] == "not-applicable"
    planned = {cid for cid, result in results.items() if result == "planned"}
    assert {"EGW-01", "EGW-04", "XW-06"} <= planned
    assert set(results.values()) <= {"planned", "not-implemented", "not-applicable"}
    run = catalogue_plan.report["run"]
    assert run["plan"] is True and run["certifiable"] is False
    assert "plan run: nothing was carried out on a cluster" in run["notCertifiableBecause"]


def test_every_planned_check_has_its_record(catalogue_plan: PlanRun) -> None:
    for check in catalogue_plan.plan["checks"]:
        record = CATALOGUE[check["id"]]
        assert check["profile"] == record.profile.value
        assert check["title"] == record.title
        assert check["actions"], check["id"]


def test_plan_prints_each_step_in_order(catalogue_plan: PlanRun) -> None:
    lines = [line for line in catalogue_plan.stdout.splitlines() if "[EGW-04 sidecar]" in line]
    steps = [line.split("] ", 2)[-1] for line in lines]
    assert steps[0] == "set mesh outboundTrafficPolicy REGISTRY_ONLY"
    assert steps[1].startswith("apply egw/service-entry.yaml, egw/gateway.yaml, egw/virtual-service.yaml:")
    assert steps[2] == "p1: in default/sleep: curl -sI http://aliyun.com converges to http(301)"
    assert steps[3].startswith("egress-gateway istio-system/istio-egressgateway logs p1 with upstream_cluster=")
    assert steps[-1].startswith("clean up: delete ServiceEntry default/external-svc-http")


def test_no_secret_material_in_the_plan(catalogue_plan: PlanRun) -> None:
    text = (catalogue_plan.report_dir / "plan.json").read_text(encoding="utf-8")
    assert "PRIVATE KEY" not in text
    secrets = [
        resource
        for check in catalogue_plan.plan["checks"]
        for action in check["actions"]
        if action["type"] == "apply"  # a delete names its objects, it carries no data
        for resource in action["resources"]
        if resource.get("kind") == "Secret"
    ]
    assert secrets, "the catalogue applies Secrets (MTLS: istio-system/test.client; ETP-02: the test CA)"
    for secret in secrets:
        assert set(secret.get("data", {}).values()) == {REDACTED}


def test_planned_addresses_are_stable() -> None:
    addresses = planned_host_addresses()
    assert addresses["aliyun.com"] == "10.96.100.11"
    assert len(set(addresses.values())) == len(addresses)


def test_planned_workload_addresses_do_not_depend_on_the_order_of_first_use() -> None:
    forward, backward = PlanRuntime(MeshMode.SIDECAR, DEFAULT_TIMEOUTS), PlanRuntime(MeshMode.SIDECAR, DEFAULT_TIMEOUTS)
    specs = list(WORKLOADS.values())
    first = {spec.ref: forward.workload(spec).ip for spec in specs}
    second = {spec.ref: backward.workload(spec).ip for spec in reversed(specs)}
    assert first == second
    assert first["default/sleep"] == "10.244.0.21"
    assert len(set(first.values())) == len(specs)
    unknown = WorkloadSpec("elsewhere", "curl", "workloads/sleep.yaml", "sleep", "default", {"app": "curl"})
    assert forward.workload(unknown).ip not in first.values()


def test_a_client_outside_the_mesh_shares_its_namespace_labels_with_the_mesh_clients() -> None:
    runtime = PlanRuntime(MeshMode.SIDECAR, DEFAULT_TIMEOUTS)
    outside = runtime.workload(FRONTEND_SLEEP_WITHOUT_SIDECAR)
    assert outside.dataplane is Dataplane.NONE
    assert (
        outside.namespace_labels == runtime.workload(FRONTEND_SLEEP).namespace_labels == {"istio-injection": "enabled"}
    )


def test_overlay_gateway_matches_the_sidecar_overlay() -> None:
    gateway = overlay_egress_gateway()
    assert gateway.host == "istio-egressgateway.istio-system.svc.cluster.local"
    assert [(p.port, p.target_port) for p in gateway.ports] == [(80, 8080), (443, 8443), (444, 8444)]
    assert not gateway.tls_mode_label


def golden_files() -> list[Path]:
    return sorted(GOLDEN.glob("*.json"))


@pytest.mark.parametrize("golden", golden_files(), ids=lambda p: p.stem)
def test_plan_of_check_matches_reviewed_golden_file(catalogue_plan: PlanRun, golden: Path) -> None:
    check_id, _, mode = golden.stem.partition(".")
    planned = catalogue_plan.check(check_id, mode or None)
    if UPDATE_GOLDEN:
        golden.write_text(json.dumps(planned, indent=2) + "\n", encoding="utf-8")
    assert planned == json.loads(golden.read_text(encoding="utf-8")), (
        f"the plan of {check_id} changed; if intended, rerun with EGRESS_UPDATE_GOLDEN=1 and review the diff"
    )


def test_golden_files_exist_for_the_reviewed_checks() -> None:
    etp = {f"ETP-0{index}.sidecar" for index in range(6)}
    reviewed = {"EGW-04.sidecar", "NSD-06.sidecar", "MTLS-04a.sidecar", "AMB-03.ambient", "AMB-04.ambient", *etp}
    assert {p.stem for p in golden_files()} >= reviewed


def _etp_entries(run: PlanRun) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for p in run.report["profiles"] for c in p["checks"] if c["id"].startswith("ETP-")}


def test_report_names_the_native_provider_and_carries_the_mapping(catalogue_plan: PlanRun) -> None:
    entries = _etp_entries(catalogue_plan)
    assert set(entries) == {f"ETP-0{index}" for index in range(6)}
    assert REPORT_KEY not in entries["ETP-00"], "no policy in ETP-00, so no provider"
    for check_id in ("ETP-01", "ETP-02", "ETP-03", "ETP-04", "ETP-05"):
        details = entries[check_id][REPORT_KEY]
        assert details["provider"] == "native"
        assert details["fieldMapping"] == mapping_record()
        assert [r["manifests"][0].split("/")[1] for r in details["rules"]] == ["native"]
    assert entries["ETP-01"][REPORT_KEY]["rules"][0]["revoked"] is True
    assert entries["ETP-05"][REPORT_KEY]["rules"][0]["revoked"] is False


@pytest.fixture(scope="module")
def vendor_plan(tmp_path_factory: pytest.TempPathFactory) -> PlanRun:
    return run_plan(tmp_path_factory.mktemp("vendor-plan"), "-k", "ETP", "--etp-provider", "vendor")


def test_the_same_checks_run_with_the_vendor_provider(vendor_plan: PlanRun, catalogue_plan: PlanRun) -> None:
    assert vendor_plan.returncode == 0, vendor_plan.stdout[-4000:]
    entries = _etp_entries(vendor_plan)
    assert {e["result"] for e in entries.values()} == {"planned"}
    assert {e[REPORT_KEY]["provider"] for i, e in entries.items() if i != "ETP-00"} == {"vendor"}
    for check in vendor_plan.plan["checks"]:
        sources = [src for a in check["actions"] if a["type"] == "apply" for src in a["sources"]]
        assert all(src.startswith("etp/vendor/") or src == "etp/authorization-policy.yaml" for src in sources), sources
        native = catalogue_plan.check(check["id"], "sidecar")
        # The same probes and log assertions; only the configuration differs.
        assert _checks_of(check) == _checks_of(native)


def _checks_of(check: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The probes and log assertions of a planned check, without workload addresses and sequence numbers."""
    found: list[tuple[Any, ...]] = []
    for action in check["actions"]:
        if action["type"] == "probe":
            found.append(("probe", action["client"], action["request"]["display"], action["expect"], action["until"]))
        elif action["type"] == "log":
            fields = {k: v for k, v in action["fields"].items() if k != "downstream_remote_address"}
            found.append(("log", action["proxy"]["workload"], action.get("lookup"), fields))
    return found


def test_ambient_plan_runs_every_ambient_check_and_reports_the_one_that_does_not_apply(tmp_path: Path) -> None:
    result = run_plan(tmp_path, "--mesh-mode", "ambient")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    ambient = [c for c in CATALOGUE.values() if MeshMode.AMBIENT in c.modes]
    assert {c["id"] for c in result.plan["checks"] if c["profile"] == "EGRESS-AMBIENT"} == {
        c.id for c in ambient if not c.not_applicable
    }
    assert all(c["mode"] == "ambient" for c in result.plan["checks"])
    (profile,) = [p for p in result.report["profiles"] if p["name"] == "EGRESS-AMBIENT"]
    x4 = next(c for c in profile["checks"] if c["id"] == "AMB-X4")
    assert x4["result"] == "not-applicable"
    assert "outboundTrafficPolicy" in x4["reason"] and "AMB-02" in x4["reason"]


def test_collect_only_ambient_lists_exactly_the_ambient_checks() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EGRESS_")}
    env["PATH"] = str(Path(sys.executable).parent)
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "egress and ambient", "-p", "no:cacheprovider"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    collected = {line for line in completed.stdout.splitlines() if "::" in line}
    applicable = [c for c in CATALOGUE.values() if MeshMode.AMBIENT in c.modes and not c.not_applicable]
    assert len(collected) == len(applicable) == 8
    assert all(line.startswith("scenarios/test_ambient.py::") and line.endswith("[ambient]") for line in collected)


def test_collect_only_selects_one_check_by_id_without_a_cluster(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EGRESS_")}
    # No container engine reachable: an empty PATH beside the interpreter.
    env["PATH"] = str(Path(sys.executable).parent)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-m",
            "egress",
            "-k",
            "EGW-04",
            "-p",
            "no:cacheprovider",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    collected = [line for line in completed.stdout.splitlines() if "::" in line]
    assert collected == ["scenarios/test_egw.py::test_gateway_and_two_hop_routes_carry_the_request[sidecar]"]


ALLOWED_IMPORTS = {
    "__future__",
    "conformance.spec.catalogue",
    "conformance.spec.model",
    "conformance.spec.record_texts",
    "conformance.checks",
    "conformance.world.external",
}


@pytest.mark.parametrize("module", sorted((PROJECT_ROOT / "scenarios").glob("test_*.py")), ids=lambda p: p.name)
def test_scenario_module_holds_steps_and_expectations_only(module: Path) -> None:
    """No API calls, no polling, no YAML: only the scenario API and the catalogue."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module in ALLOWED_IMPORTS, f"{module.name} imports {node.module}"
            # A scenario declares its checks' records; borrowing another's is for the harness's own tests.
            assert "stand_in" not in {a.name for a in node.names}, f"{module.name} runs a body under another record"
        elif isinstance(node, ast.Import):
            raise AssertionError(f"{module.name} imports {[a.name for a in node.names]}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert "apiVersion" not in node.value and "\nkind:" not in node.value, f"YAML in {module.name}"
        elif isinstance(node, (ast.For, ast.While)):
            raise AssertionError(f"{module.name} loops (line {node.lineno}): polling belongs to the runtime")
