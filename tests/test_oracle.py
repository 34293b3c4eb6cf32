"""The routing oracle: Istio's own code predicts each check's path; its verdicts against the plan.

The tests marked ``real_oracle`` build and run the real oracle (Go, the Istio branches from the Go module
proxy or the module cache). Without Go they are skipped, unless EGRESS_REQUIRE_ORACLE=1 makes that a
failure. The binaries are cached like the harness's other tools, under EGRESS_ORACLE_CACHE_DIR or
``~/.cache/egress-conformance``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.engine import oracle, oracle_build
from conformance.engine.oracle import OracleReport, run_oracle
from conformance.engine.oracle_build import (
    Branch,
    OracleError,
    OracleTimeouts,
    branch_for,
    build_oracle,
    cache_key,
    run_manifest_generate,
)
from conformance.engine.oracle_judgement import compare
from conformance.engine.oracle_verdicts import Verdict
from tests.fakes.executables import FakeBin

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "oracle" / "testdata"
GATEWAY = "egress-gateway istio-system/istio-egressgateway"

Plan = dict[str, Any]


def load(name: str) -> Plan:
    data: Plan = json.loads((FIXTURES / f"{name}.plan.json").read_text())
    return data


def check_of(plan: Plan, check_id: str) -> dict[str, Any]:
    return next(c for c in plan["checks"] if c["id"] == check_id)


def only(plan: Plan, *check_ids: str) -> Plan:
    """The plan reduced to some checks (faster runs, one subject per test)."""
    reduced = copy.deepcopy(plan)
    reduced["checks"] = [c for c in reduced["checks"] if c["id"] in check_ids]
    return reduced


def resources_of(check: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for a in check["actions"] if a["type"] == "apply" for r in a["resources"] if r["kind"] == kind]


# --------------------------------------------------------------------------------------------------
# Branch choice, deadlines, build cache (no Go needed)


@pytest.mark.parametrize(
    ("version", "minor", "noted"),
    [("1.30.3", "1.30", False), ("v1.31.0-rc.0", "1.31", False), ("1.29.6", "1.30", True), ("1.32.0", "1.31", True)],
)
def test_branch_follows_the_plans_istio_minor(version: str, minor: str, noted: bool) -> None:
    branch = branch_for(version)
    assert branch.minor == minor
    assert (branch.note is not None) == noted
    if noted:
        assert version in (branch.note or "") and branch.name in (branch.note or "")


def test_branch_rejects_a_version_that_is_not_one() -> None:
    with pytest.raises(OracleError, match="istioVersion 'latest'"):
        branch_for("latest")


def test_branch_files_exist_for_every_served_branch() -> None:
    for minor in oracle_build.BRANCHES:
        branch = Branch(minor)
        assert (oracle_build.ORACLE_SOURCE / branch.modfile).is_file()
        assert (oracle_build.ORACLE_SOURCE / branch.sumfile).is_file()


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.plan.json")))
def test_every_fixture_follows_the_plan_schema(fixture: str) -> None:
    plan = oracle.load_plan(FIXTURES / fixture)
    assert plan["kind"] == "Plan"


def test_a_plan_off_the_schema_is_refused_before_anything_is_built(tmp_path: Path, fake_bin: FakeBin) -> None:
    go = fake_bin("go")
    plan = load("egw-seed003")
    del plan["egressGateway"]["tlsModeLabel"]
    plan["checks"][0]["mode"] = "kubernetes"
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    with pytest.raises(OracleError, match=r"(?s)plan\.schema\.json.*checks/0/mode.*egressGateway.*tlsModeLabel"):
        run_oracle(path, cache_dir=tmp_path)
    assert go.argvs() == []


def test_timeouts_scale_together() -> None:
    scaled = OracleTimeouts(build=10, run=2).scaled(3)
    assert (scaled.build, scaled.run) == (30, 6)
    with pytest.raises(ValueError):
        OracleTimeouts().scaled(0)


def fake_source(tmp_path: Path) -> Path:
    source = tmp_path / "oracle"
    source.mkdir()
    for name in ("go.mod", "go.sum", "go.1.31.mod", "go.1.31.sum"):
        (source / name).write_text(f"{name}\n")
    (source / "walk.go").write_text("package oracle\n")
    return source


def test_cache_key_follows_sources_and_go_version(tmp_path: Path) -> None:
    source = fake_source(tmp_path)
    branch = Branch("1.30")
    first = cache_key(source, branch, "go1.26.8")
    assert cache_key(source, branch, "go1.26.8") == first
    assert cache_key(source, branch, "go1.26.9") != first
    assert cache_key(source, Branch("1.31"), "go1.26.8") != first
    (source / "walk.go").write_text("package oracle // changed\n")
    second = cache_key(source, branch, "go1.26.8")
    assert second != first
    # A package under internal/ is part of the binary too: a change there must rebuild it.
    (source / "internal" / "walk").mkdir(parents=True)
    (source / "internal" / "walk" / "gateway.go").write_text("package walk\n")
    third = cache_key(source, branch, "go1.26.8")
    assert third != second
    (source / "internal" / "walk" / "gateway.go").write_text("package walk // changed\n")
    assert cache_key(source, branch, "go1.26.8") != third


def test_missing_go_is_a_clear_error(tmp_path: Path, fake_bin: FakeBin) -> None:
    fake_bin.isolate_path()
    with pytest.raises(OracleError, match=r"`go` is not on PATH"):
        build_oracle(Branch("1.30"), cache_dir=tmp_path, timeouts=OracleTimeouts(), source=fake_source(tmp_path))


def test_a_cached_binary_is_reused_without_building(tmp_path: Path, fake_bin: FakeBin) -> None:
    go = fake_bin("go").on("env", "GOVERSION", stdout="go1.26.8\n")
    source = fake_source(tmp_path)
    branch = Branch("1.30")
    cached = tmp_path / "cache" / "oracle" / branch.name / f"oracle-{cache_key(source, branch, 'go1.26.8')}.test"
    cached.parent.mkdir(parents=True)
    cached.write_text("#!/bin/sh\n")
    cached.chmod(0o755)
    got = build_oracle(branch, cache_dir=tmp_path / "cache", timeouts=OracleTimeouts(), source=source)
    assert got == cached
    assert go.argvs() == [["env", "GOVERSION"]]


def test_a_failed_build_reports_gos_output(tmp_path: Path, fake_bin: FakeBin) -> None:
    go = fake_bin("go").on("env", "GOVERSION", stdout="go1.26.8\n")
    go.on("-C", stderr="walk.go:1: undefined: simulation.Run\n", exit_code=1)
    source = fake_source(tmp_path)
    with pytest.raises(OracleError, match=r"(?s)release-1\.31.*exit code 1.*undefined: simulation\.Run"):
        build_oracle(Branch("1.31"), cache_dir=tmp_path / "cache", timeouts=OracleTimeouts(), source=source)
    build = go.argvs()[1]
    assert build[:4] == ["-C", str(source), "test", "-c"] and "-modfile=go.1.31.mod" in build
    assert not list((tmp_path / "cache" / "oracle" / "release-1.31").glob("oracle-*.test"))


# --------------------------------------------------------------------------------------------------
# Comparison rules, on hand-made predictions (no Go needed)


def probe_action(outcome: str, until: str = "converges", url: str = "http://aliyun.com") -> dict[str, Any]:
    return {
        "seq": 1,
        "type": "probe",
        "step": "s",
        "probe": "p1",
        "client": "default/sleep",
        "request": {"method": "GET", "url": url, "headers": {}, "display": "curl"},
        "expect": {"outcome": outcome},
        "until": until,
    }


def log_action(kind: str, workload: str, fields: dict[str, Any] | None = None, present: bool = True) -> dict[str, Any]:
    return {
        "seq": 2,
        "type": "log",
        "step": "s",
        "probe": "p1",
        "proxy": {"kind": kind, "workload": workload},
        "present": present,
        "fields": fields or {},
    }


def sidecar_hop(cluster: str | None, **log: Any) -> dict[str, Any]:
    return {
        "proxy": "sidecar",
        "workload": "default/sleep",
        "simulated": True,
        "call": {"tls": "plaintext", "port": 80},
        "cluster": cluster,
        "log": {"upstream_cluster": cluster, **log},
    }


def judged(actions: list[dict[str, Any]], prediction: dict[str, Any], analysis: list[Any] | None = None) -> Verdict:
    plan = {"checks": [{"id": "X-01", "mode": "sidecar", "actions": actions}]}
    prediction = {"check": "X-01", "mode": "sidecar", "probe": "p1", "state": "s1", **prediction}
    predictions = {"probes": [prediction], "analysis": analysis or []}
    return compare(plan, predictions)[("X-01", "sidecar")].verdict


BLOCK_ALL = {
    "hops": [sidecar_hop(None, route_name="block_all", response_code=502)],
    "outcome": {"class": "block_all", "clientObserves": "http(502)", "at": "sidecar default/sleep", "detail": "d"},
}
ROUTED = {
    "hops": [sidecar_hop("outbound|80||aliyun.com", upstream_host_port=80)],
    "outcome": {"class": "routed", "clientObserves": "origin", "origin": {"host": "aliyun.com", "port": 80}},
}


def test_a_block_agrees_with_the_block_it_expects_and_not_with_another() -> None:
    assert judged([probe_action("http(502)", "holds")], BLOCK_ALL) is Verdict.AGREES
    assert judged([probe_action("tls-reset", "holds")], BLOCK_ALL) is Verdict.DISAGREES
    assert judged([probe_action("http(301)")], BLOCK_ALL) is Verdict.DISAGREES


def test_reaching_the_origin_agrees_with_its_answer_not_with_envoys_own_codes() -> None:
    assert judged([probe_action("http(301)")], ROUTED) is Verdict.AGREES
    assert judged([probe_action("http(502)", "holds")], ROUTED) is Verdict.DISAGREES
    assert judged([probe_action("http(503)", url="http://httpbin.org/status/503")], ROUTED) is Verdict.AGREES


def test_without_a_mesh_proxy_only_the_origins_own_answers_agree() -> None:
    direct = {
        "hops": [{"proxy": "none", "workload": "external-probe/probe", "simulated": False}],
        "outcome": {"class": "direct", "clientObserves": "origin", "origin": {"address": "10.96.0.9", "port": 443}},
    }
    assert judged([probe_action("http(200)")], direct) is Verdict.AGREES
    assert judged([probe_action("tls-reset", "holds")], direct) is Verdict.NOT_PREDICTED


def test_log_fields_are_compared_on_the_named_proxy() -> None:
    same = log_action("sidecar", "default/sleep", {"upstream_cluster": {"equals": "outbound|80||aliyun.com"}})
    other = log_action("sidecar", "default/sleep", {"upstream_cluster": {"equals": "BlackHoleCluster"}})
    port = log_action("sidecar", "default/sleep", {"upstream_host": {"portOf": 443}})
    assert judged([probe_action("http(301)"), same], ROUTED) is Verdict.AGREES
    assert judged([probe_action("http(301)"), other], ROUTED) is Verdict.DISAGREES
    assert judged([probe_action("http(301)"), port], ROUTED) is Verdict.DISAGREES


def test_a_gateway_log_disagrees_when_the_request_does_not_pass_the_gateway() -> None:
    present = log_action("egress-gateway", "istio-system/istio-egressgateway")
    absent = log_action("egress-gateway", "istio-system/istio-egressgateway", present=False)
    assert judged([probe_action("http(301)"), present], ROUTED) is Verdict.DISAGREES
    assert judged([probe_action("http(301)"), absent], ROUTED) is Verdict.AGREES


def test_an_absent_entry_needs_a_control_probe_that_reaches_the_proxy() -> None:
    absent = {**log_action("egress-gateway", "istio-system/istio-egressgateway", present=False), "controlProbe": "c1"}
    control = {**probe_action("http(204)"), "probe": "c1", "seq": 3, "control": True}
    gateway_hop = {**sidecar_hop(None), "proxy": "egress-gateway", "workload": "istio-system/istio-egressgateway"}
    answered = {
        "hops": [gateway_hop],
        "outcome": {"class": "direct-response", "clientObserves": "http(204)", "at": GATEWAY, "detail": "d"},
    }
    plan = {"checks": [{"id": "X-01", "mode": "sidecar", "actions": [probe_action("http(301)"), absent, control]}]}

    def verdict(control_prediction: dict[str, Any]) -> Verdict:
        probes = [
            {"check": "X-01", "mode": "sidecar", "probe": "p1", "state": "s", **ROUTED},
            {"check": "X-01", "mode": "sidecar", "probe": "c1", "state": "s", **control_prediction},
        ]
        return compare(plan, {"probes": probes})[("X-01", "sidecar")].verdict

    assert verdict(answered) is Verdict.AGREES
    assert verdict(ROUTED) is Verdict.DISAGREES


def test_what_the_oracle_cannot_judge_is_never_agreeing() -> None:
    unjudged = {**ROUTED, "notPredicted": ["NetworkPolicy x selects the client"]}
    assert judged([probe_action("http(301)")], unjudged) is Verdict.NOT_PREDICTED
    ztunnel = log_action("ztunnel", "default/sleep")
    assert judged([probe_action("http(301)"), ztunnel], ROUTED) is Verdict.NOT_PREDICTED


def test_a_configuration_istio_rejects_disagrees_with_every_probe_of_its_state() -> None:
    rejected = {"hops": [], "outcome": {"class": "config-rejected", "detail": "Istio's validation rejects ..."}}
    assert judged([probe_action("http(301)")], rejected) is Verdict.DISAGREES
    assert judged([probe_action("http(502)", "holds")], rejected) is Verdict.DISAGREES


def test_an_rbac_denial_in_the_log_disagrees_with_a_proxy_predicted_to_allow() -> None:
    gateway = "istio-system/istio-egressgateway"
    denial = {
        "response_code_details": {"equals": "rbac_access_denied_matched_policy[ns[istio-system]-policy[p]-rule[0]]"}
    }
    upstream = {"response_code_details": {"equals": "via_upstream"}}

    def through_gateway(decision: str) -> dict[str, Any]:
        hop = {**sidecar_hop("outbound|443||test.com"), "proxy": "egress-gateway", "workload": gateway}
        hop["rbac"] = {"decision": decision}
        origin = {"host": "test.com", "port": 443, "known": "external mTLS ingress", "transport": "mutual-tls"}
        return {"hops": [hop], "outcome": {"class": "routed", "clientObserves": "origin", "origin": origin}}

    probe = probe_action("http(403)", "holds")
    denied_log = log_action("egress-gateway", gateway, denial)
    upstream_log = log_action("egress-gateway", gateway, upstream)
    assert judged([probe, denied_log], through_gateway("allow")) is Verdict.DISAGREES
    assert judged([probe, upstream_log], through_gateway("deny")) is Verdict.DISAGREES
    # Allowed and answered by the external ingress itself: the oracle cannot tell what it answers.
    assert judged([probe, upstream_log], through_gateway("allow")) is Verdict.NOT_PREDICTED


def test_an_analyzer_error_is_a_disagreement_and_a_warning_is_listed() -> None:
    error = {"check": "X-01", "state": "s1", "messages": [{"code": "IST0101", "level": "Error", "message": "m"}]}
    warning = {"check": "X-01", "state": "s1", "messages": [{"code": "IST0129", "level": "Warning", "message": "w"}]}
    assert judged([probe_action("http(301)")], ROUTED, [error]) is Verdict.DISAGREES
    plan = {"checks": [{"id": "X-01", "mode": "sidecar", "actions": [probe_action("http(301)")]}]}
    prediction = {"check": "X-01", "mode": "sidecar", "probe": "p1", "state": "s1", **ROUTED}
    verdict = compare(plan, {"probes": [prediction], "analysis": [warning]})[("X-01", "sidecar")]
    assert verdict.verdict is Verdict.AGREES
    assert verdict.warnings == ("IST0129 : w",)


# --------------------------------------------------------------------------------------------------
# The real oracle

real_oracle = pytest.mark.skipif(
    shutil.which("go") is None and os.environ.get("EGRESS_REQUIRE_ORACLE") != "1",
    reason="the routing oracle needs Go on PATH (set EGRESS_REQUIRE_ORACLE=1 to make this a failure)",
)


@pytest.fixture(scope="session")
def oracle_cache() -> Path:
    if shutil.which("go") is None:
        pytest.fail("EGRESS_REQUIRE_ORACLE=1 but `go` is not on PATH")
    return Path(os.environ.get("EGRESS_ORACLE_CACHE_DIR", "~/.cache/egress-conformance")).expanduser()


@pytest.fixture(scope="session")
def predict(oracle_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Plan], OracleReport]]:
    directory = tmp_path_factory.mktemp("plans")
    counter = iter(range(10_000))

    def run(plan: Plan) -> OracleReport:
        path = directory / f"plan-{next(counter)}.json"
        path.write_text(json.dumps(plan))
        return run_oracle(path, cache_dir=oracle_cache)

    yield run


def verdicts(report: OracleReport) -> dict[str, str]:
    return {check_id: v.verdict.value for (check_id, _), v in report.verdicts.items()}


EXPECTED_VERDICTS = {
    "egw-seed003": {"EGW-01": "agrees", "EGW-02": "disagrees", "EGW-03": "agrees", "EGW-04": "agrees"},
    "nsd-seed004": {
        "NSD-02": "agrees",
        "NSD-03": "agrees",
        "NSD-04": "agrees",
        "NSD-05": "agrees",
        "NSD-06": "not-predicted",
        "NSD-07": "agrees",
    },
    "mtls-seed002": {
        "MTLS-01": "agrees",
        "MTLS-02": "agrees",
        "MTLS-03": "agrees",
        "MTLS-04a": "agrees",
        "MTLS-04b": "not-predicted",
        "MTLS-04c": "agrees",
        "MTLS-05": "agrees",
    },
    "amb-seed000": {
        "AMB-01": "not-predicted",
        "AMB-02": "not-predicted",
        "AMB-03": "agrees",
        "AMB-04": "not-predicted",
        "AMB-X1": "agrees",
        "AMB-X2": "agrees",
        "AMB-X4": "not-predicted",
    },
    "tls-paths": {"X-TLS-01": "agrees", "X-TLS-02": "agrees", "X-TLS-03": "agrees"},
}
EXPECTED_VERDICTS["egw-seed003-tlsmode-label"] = EXPECTED_VERDICTS["egw-seed003"]
EXPECTED_VERDICTS["mtls-seed002-tlsmode-label"] = EXPECTED_VERDICTS["mtls-seed002"]


@real_oracle
@pytest.mark.parametrize("fixture", sorted(EXPECTED_VERDICTS))
def test_the_oracle_judges_the_seed_fixtures(fixture: str, predict: Callable[[Plan], OracleReport]) -> None:
    report = predict(load(fixture))
    assert report.branch.name == "release-1.30"
    assert report.istio_module.startswith("istio.io/istio@v0.0.0-20260826214018-")
    assert verdicts(report) == EXPECTED_VERDICTS[fixture]


@real_oracle
def test_block_all_logs_no_upstream_cluster(predict: Callable[[Plan], OracleReport]) -> None:
    """EGW-02 expects upstream_cluster=BlackHoleCluster; REGISTRY_ONLY answers HTTP with a direct_response
    route (block_all), for which Envoy records no upstream cluster: a finding about the catalogue."""
    report = predict(only(load("egw-seed003"), "EGW-02"))
    (probe,) = report.verdicts[("EGW-02", "sidecar")].probes
    assert probe.hop == "sidecar default/sleep"
    assert any("upstream_cluster" in r and "predicted null" in r for r in probe.reasons)
    assert "block_all" in probe.predicted


@real_oracle
def test_paths_through_the_gateway_name_every_hop(predict: Callable[[Plan], OracleReport]) -> None:
    report = predict(only(load("nsd-seed004"), "NSD-03", "NSD-04"))
    routed = report.verdicts[("NSD-03", "sidecar")].probes[0].predicted
    assert routed.startswith("sidecar demo-frontend/sleep [plaintext:80")
    assert (
        "outbound|80|target-egress-gateway-mTLS|istio-egressgateway.istio-system.svc.cluster.local -> istio-mtls"
        in routed
    )
    assert f"{GATEWAY} [mtls:8080" in routed and routed.endswith("origin www.aliyun.com:80")
    denied = report.verdicts[("NSD-04", "sidecar")].probes[0].predicted
    assert "rbac deny" in denied and denied.endswith("rbac-deny http(403)")


# Deliberately broken steps: each turns its check into a disagreement naming the hop where it parts.


@real_oracle
def test_a_gateway_typo_in_the_virtual_service_disagrees_at_the_gateway(
    predict: Callable[[Plan], OracleReport],
) -> None:
    plan = only(load("egw-seed003"), "EGW-04")
    (vs,) = resources_of(check_of(plan, "EGW-04"), "VirtualService")
    vs["spec"]["gateways"] = ["mesh", "istio-system/istio-egressgatway"]
    vs["spec"]["http"][1]["match"][0]["gateways"] = ["istio-system/istio-egressgatway"]
    verdict = predict(plan).verdicts[("EGW-04", "sidecar")]
    assert verdict.verdict is Verdict.DISAGREES
    (probe,) = verdict.probes
    assert probe.hop == GATEWAY
    assert "predicted http(404)" in probe.reasons[0]
    assert any(r.startswith("istioctl analyze: IST0101") for r in probe.reasons)


@real_oracle
def test_a_missing_subset_disagrees_at_the_client_sidecar(predict: Callable[[Plan], OracleReport]) -> None:
    plan = only(load("nsd-seed004"), "NSD-03")
    (dr,) = resources_of(check_of(plan, "NSD-03"), "DestinationRule")
    dr["spec"]["subsets"][0]["name"] = "renamed-subset"
    verdict = predict(plan).verdicts[("NSD-03", "sidecar")]
    assert verdict.verdict is Verdict.DISAGREES
    probe = verdict.probes[0]
    assert probe.hop == "sidecar demo-frontend/sleep"
    assert "predicted http(503)" in probe.reasons[0] and "absent from CDS" in probe.reasons[0]


@real_oracle
def test_a_service_entry_removed_under_registry_only_disagrees_at_the_client_sidecar(
    predict: Callable[[Plan], OracleReport],
) -> None:
    plan = only(load("egw-seed003"), "EGW-03")
    actions = check_of(plan, "EGW-03")["actions"]
    removal = {
        "seq": 0,
        "type": "delete",
        "step": "ServiceEntry removed",
        "resources": [
            {
                "apiVersion": "networking.istio.io/v1beta1",
                "kind": "ServiceEntry",
                "name": "external-svc-http",
                "namespace": "default",
            }
        ],
    }
    position = next(i for i, a in enumerate(actions) if a["type"] == "probe")
    actions.insert(position, removal)
    for seq, action in enumerate(actions, start=1):
        action["seq"] = seq
    verdict = predict(plan).verdicts[("EGW-03", "sidecar")]
    assert verdict.verdict is Verdict.DISAGREES
    probe = verdict.probes[0]
    assert probe.hop == "sidecar default/sleep"
    assert "predicted http(502)" in probe.reasons[0] and "block_all" in probe.reasons[0]


@real_oracle
def test_a_state_istiod_cannot_read_is_not_predicted_and_the_others_still_are(
    predict: Callable[[Plan], OracleReport],
) -> None:
    plan = only(load("egw-seed003"), "EGW-01", "EGW-03")
    (entry,) = resources_of(check_of(plan, "EGW-03"), "ServiceEntry")
    entry["spec"]["ports"][0]["number"] = "eighty"
    report = predict(plan)
    broken = report.verdicts[("EGW-03", "sidecar")]
    assert broken.verdict is Verdict.NOT_PREDICTED
    assert any("cannot read this state's configuration" in r for p in broken.probes for r in p.reasons)
    assert report.verdicts[("EGW-01", "sidecar")].verdict is Verdict.AGREES


@real_oracle
def test_a_state_istio_validation_rejects_is_a_disagreement(predict: Callable[[Plan], OracleReport]) -> None:
    plan = only(load("egw-seed003"), "EGW-04")
    (service,) = resources_of(check_of(plan, "EGW-04"), "VirtualService")
    service["spec"]["http"][0]["route"][0]["weight"] = -5
    verdict = predict(plan).verdicts[("EGW-04", "sidecar")]
    assert verdict.verdict is Verdict.DISAGREES
    assert any("Istio's validation rejects" in r for p in verdict.probes for r in p.reasons)


@real_oracle
def test_an_external_world_service_name_is_an_address_istiod_does_not_know(
    predict: Callable[[Plan], OracleReport],
) -> None:
    plan = only(load("egw-seed003"), "EGW-02")
    check = check_of(plan, "EGW-02")
    probe = next(a for a in check["actions"] if a["type"] == "probe")
    probe["request"]["url"] = "http://aliyun-com.external.svc.cluster.local"
    log = next(a for a in check["actions"] if a["type"] == "log")
    log["fields"] = {"route_name": {"equals": "block_all"}, "response_code": {"equals": 502}}
    report = predict(plan)
    verdict = report.verdicts[("EGW-02", "sidecar")]
    assert verdict.verdict is Verdict.AGREES
    assert any("external-world Service" in a for a in verdict.probes[0].assumptions)


# Sidecar -> egress gateway mTLS: the adaptation each gateway variant needs (spec, top of the sidecar profile).


def without_adaptations(plan: Plan) -> Plan:
    stripped = copy.deepcopy(plan)
    for check in stripped["checks"]:
        check["actions"] = [a for a in check["actions"] if not a.get("adaptation")]
    return stripped


@real_oracle
def test_without_the_label_an_istio_mutual_gateway_needs_the_istio_mutual_destination_rule(
    predict: Callable[[Plan], OracleReport],
) -> None:
    plan = only(load("mtls-seed002"), "MTLS-03")
    adapted = predict(plan).verdicts[("MTLS-03", "sidecar")]
    assert adapted.verdict is Verdict.AGREES
    bare = predict(without_adaptations(plan)).verdicts[("MTLS-03", "sidecar")]
    assert bare.verdict is Verdict.DISAGREES
    assert bare.probes[0].hop == GATEWAY
    assert "invalid TLS" in bare.probes[0].reasons[0] and "predicted http(503)" in bare.probes[0].reasons[0]


@real_oracle
def test_with_the_label_a_plain_http_gateway_needs_the_disable_destination_rule(
    predict: Callable[[Plan], OracleReport],
) -> None:
    plan = only(load("egw-seed003-tlsmode-label"), "EGW-04")
    assert predict(plan).verdicts[("EGW-04", "sidecar")].verdict is Verdict.AGREES
    bare = predict(without_adaptations(plan)).verdicts[("EGW-04", "sidecar")]
    assert bare.verdict is Verdict.DISAGREES
    assert bare.probes[0].hop == GATEWAY


@real_oracle
def test_the_gateway_label_alone_decides_when_no_destination_rule_does(predict: Callable[[Plan], OracleReport]) -> None:
    """The documented seed 003 (plain gateway) works unlabelled; seed 002 (ISTIO_MUTUAL gateway) labelled."""
    egw = without_adaptations(only(load("egw-seed003"), "EGW-04"))
    mtls = without_adaptations(only(load("mtls-seed002-tlsmode-label"), "MTLS-03"))
    assert predict(egw).verdicts[("EGW-04", "sidecar")].verdict is Verdict.AGREES
    assert predict(mtls).verdicts[("MTLS-03", "sidecar")].verdict is Verdict.AGREES


@real_oracle
def test_with_the_label_tls_passthrough_is_wrapped_in_mtls_and_refused(predict: Callable[[Plan], OracleReport]) -> None:
    """Upstream's HTTPS passthrough (a TLS PASSTHROUGH server listing hosts) relies on the sidecar forwarding
    the client's own TLS; with the tlsMode label auto-mTLS wraps it, and the gateway matches no chain."""
    plan = only(load("tls-paths"), "X-TLS-03")
    plan["egressGateway"]["tlsModeLabel"] = True
    plan["egressGateway"]["podLabels"]["security.istio.io/tlsMode"] = "istio"
    verdict = predict(plan).verdicts[("X-TLS-03", "sidecar")]
    assert verdict.verdict is Verdict.DISAGREES
    (probe,) = verdict.probes
    assert probe.hop == GATEWAY
    assert "predicted tls-reset" in probe.reasons[0] and "no filter chain" in probe.reasons[0]


@real_oracle
def test_a_namespace_deny_needs_mtls_to_the_gateway(predict: Callable[[Plan], OracleReport]) -> None:
    """Over a plaintext hop the gateway knows no caller identity: a DENY on the source namespace never matches."""
    plan = only(load("egw-seed003"), "EGW-04")
    check = check_of(plan, "EGW-04")
    deny = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "deny-default", "namespace": "istio-system"},
        "spec": {
            "action": "DENY",
            "selector": {"matchLabels": {"istio": "egressgateway"}},
            "rules": [{"from": [{"source": {"namespaces": ["default"]}}]}],
        },
    }
    probe = next(a for a in check["actions"] if a["type"] == "probe")
    probe["expect"] = {"outcome": "http(403)"}
    probe["until"] = "holds"
    check["actions"] = [a for a in check["actions"] if a["type"] != "log"]
    check["actions"].insert(
        check["actions"].index(probe), {"type": "apply", "step": "deny", "sources": [], "resources": [deny]}
    )
    for seq, action in enumerate(check["actions"], start=1):
        action["seq"] = seq
    report = predict(plan)
    verdict = report.verdicts[("EGW-04", "sidecar")]
    assert verdict.verdict is Verdict.DISAGREES
    assert verdict.probes[0].hop == GATEWAY
    (prediction,) = report.predictions["probes"]
    gateway = prediction["hops"][1]
    assert gateway["call"]["tls"] == "plaintext" and "principal" not in gateway["call"]
    assert gateway["rbac"]["decision"] == "allow" and "without mTLS" in gateway["rbac"]["reason"]


# Branches and istioctl.


@real_oracle
@pytest.mark.parametrize("fixture", ["egw-seed003", "nsd-seed004", "mtls-seed002", "amb-seed000"])
def test_release_1_31_judges_the_fixtures_alike(fixture: str, predict: Callable[[Plan], OracleReport]) -> None:
    plan = load(fixture)
    plan["istioVersion"] = "1.31.0"
    report = predict(plan)
    assert report.branch.name == "release-1.31"
    assert report.istio_module.startswith("istio.io/istio@v0.0.0-20260827124520-")
    assert verdicts(report) == EXPECTED_VERDICTS[fixture]


@real_oracle
def test_a_1_29_plan_is_predicted_with_1_30_and_says_so(predict: Callable[[Plan], OracleReport]) -> None:
    plan = only(load("egw-seed003"), "EGW-01")
    plan["istioVersion"] = "1.29.6"
    report = predict(plan)
    assert report.branch.name == "release-1.30"
    assert "1.29.6" in report.as_dict()["branchNote"]


@real_oracle
@pytest.mark.parametrize("minor", sorted(oracle_build.BRANCHES))
def test_manifest_generate_renders_the_overlays_as_the_plan_says(minor: str, oracle_cache: Path) -> None:
    branch = Branch(minor)
    binary = build_oracle(branch, cache_dir=oracle_cache, timeouts=OracleTimeouts())
    summary = run_manifest_generate(
        binary, REPO / "manifests" / "istio", timeouts=OracleTimeouts(), plan_path=FIXTURES / "egw-seed003.plan.json"
    )
    assert "runErrors" not in summary
    sidecar, ambient = summary["overlays"]
    assert sidecar["failures"] == [] and ambient["failures"] == []
    assert {(p["name"], p["port"], p["targetPort"]) for p in sidecar["egressGatewayPorts"]} >= {
        ("http2", 80, 8080),
        ("https", 443, 8443),
        ("https-444", 444, 8444),
    }
    assert "security.istio.io/tlsMode" not in sidecar["egressGatewayPodLabels"]
    assert ambient["pilotEnableAmbient"] == "true"
    assert ambient["kinds"]["DaemonSet"] == 2


@real_oracle
def test_manifest_generate_fails_on_a_plan_that_claims_the_tls_mode_label(oracle_cache: Path) -> None:
    binary = build_oracle(Branch("1.30"), cache_dir=oracle_cache, timeouts=OracleTimeouts())
    summary = run_manifest_generate(
        binary,
        REPO / "manifests" / "istio",
        timeouts=OracleTimeouts(),
        plan_path=FIXTURES / "egw-seed003-tlsmode-label.plan.json",
    )
    sidecar = summary["overlays"][0]
    assert any("tlsModeLabel=true" in f for f in sidecar["failures"])
    assert summary["runErrors"]


@real_oracle
@pytest.mark.parametrize("minor", sorted(oracle_build.BRANCHES))
def test_the_oracles_own_go_tests_pass_on_every_branch(minor: str) -> None:
    """The Go unit tests of the oracle's packages (the RBAC evaluator's among them) are not part of the
    binary the harness builds; they run here, against each Istio branch."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("EGRESS_REQUIRE_ORACLE=1 but `go` is not on PATH")
    branch = Branch(minor)
    command = [
        go,
        "-C",
        str(oracle_build.ORACLE_SOURCE),
        "test",
        "-count=1",
        f"-modfile={branch.modfile}",
        "./internal/...",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    assert "ok  \tegress-conformance.io/oracle/internal/rbac" in completed.stdout
