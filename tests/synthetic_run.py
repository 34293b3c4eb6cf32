"""Synthetic conformance runs: real checks of the catalogue, the real plugin, step and scenario API, the real
report, summary, Allure results and failure evidence — over a scripted runtime instead of a cluster.

The runtime answers each probe with the outcome the test sets, records what is deleted, and collects
failure evidence through ``conformance.runtimes.failure_evidence`` from scripted diagnostics. A private key of the
harness's own PKI is planted everywhere a secret could leak from: the scenario variables, a failure
message, curl transcripts, proxy logs, events. Tests then read what the run wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CONFTEST = """
import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conformance.runtimes import failure_evidence
from conformance.probe.accesslog import AccessLogEntry
from conformance.world.external import new_pki
from conformance.runtimes.failure_evidence import ClusterAccess, CommandOutput
from conformance.runtimes.planning import PlanRuntime
from conformance.probe.responses import Headers, ProbeResult
from conformance.probe.outcomes import http
from conformance.engine.runtime import EgressGatewayInfo, Observation, Until
from conformance.settings.options import MeshMode
from conformance.core.timeouts import DEFAULT_TIMEOUTS

KEY_PEM = new_pki().client.private_key_pem()
KEY_B64 = base64.b64encode(KEY_PEM.encode()).decode()
Path(os.environ["PLANTED_SECRET_FILE"]).write_text(KEY_PEM)
DELETED = Path(os.environ["DELETED_FILE"])


class Diagnostics:
    access = ClusterAccess(Path(os.environ["SYNTHETIC_KUBECONFIG"]), "synthetic")

    def logs(self, namespace, selector, container, since):
        noise = "".join(f'{{"line": {i}, "path": "/noise"}}\\n' for i in range(20000))
        return {f"{selector.split(',')[0].split('=')[-1]}-pod-1": noise + f"leaked {KEY_PEM}\\n"}

    def pod_names(self, namespace, selector):
        return ["istio-egressgateway-pod-1"]

    def events(self, namespace):
        return [{"type": "Warning", "reason": "BackOff", "count": 2, "lastTimestamp": "2026-11-30T08:00:00Z",
                 "involvedObject": {"kind": "Pod", "name": "sleep-planned"}, "message": f"mounted {KEY_B64}"}]

    def istioctl(self, args):
        if args[0] == "analyze":
            return CommandOutput(79, "Warning [IST0134] (ServiceEntry default/external-svc-http) no addresses", "")
        return CommandOutput(0, f"NAME {args[1]} of {args[2]}", "")


class ScriptedRuntime(PlanRuntime):
    planning = False

    def __init__(self, mode):
        base = PlanRuntime(mode, DEFAULT_TIMEOUTS).egress_gateway()
        labelled = EgressGatewayInfo(base.namespace, base.name, base.service_account,
                                     {**base.pod_labels, "security.istio.io/tlsMode": "istio"}, base.ports)
        super().__init__(mode, DEFAULT_TIMEOUTS, labelled)
        self.outcome = http(200)

    def variables(self):
        return {**super().variables(), "TEST_CLIENT_TLS_KEY": KEY_B64}

    def secret_values(self):
        return [KEY_B64]

    def delete(self, refs):
        with DELETED.open("a") as handle:
            handle.writelines(f"{ref}\\n" for ref in refs)

    def probe(self, probe_id, client, request, expectation, until, changed_at):
        now = datetime.now(UTC)
        outcome = self.outcome
        result = ProbeResult(
            outcome=outcome, status=outcome.status, headers=Headers([("server", "envoy")]), body="",
            body_truncated=False, curl_exit_code=0, exec_exit_code=0, curl_error=None, stderr=KEY_PEM,
            command=("curl", request.url), display_command=request.display(), token=f"token-{probe_id}",
            namespace=client.namespace, pod=client.pod, pod_ip=client.ip, started_at=now, finished_at=now,
        )
        if not expectation.matches(result):
            raise AssertionError(f"{probe_id}: {request.display()} ended in {outcome.describe()}, not "
                                 f"{expectation}; the client presented {KEY_PEM}")
        converged = 1.5 if until is Until.CONVERGES else None
        return Observation(probe_id, client, request, expectation, until, result, attempts=4,
                           converged_after=converged, transcripts=[result.transcript()])

    def await_log_entry(self, source, observation, expectation, lookup):
        data = {"response_code": 301, "upstream_cluster": "outbound|80||aliyun.com", "authority": "aliyun.com"}
        return AccessLogEntry.from_json(data, line=json.dumps(data))

    def collect_failure_evidence(self, run, report_dir):
        return failure_evidence.collect(run, self.mode.value, Diagnostics(), report_dir)

    def cluster_access(self):
        return Diagnostics.access


@pytest.fixture(scope="session")
def mesh(request):
    return request.param


@pytest.fixture(scope="session")
def runtime(mesh):
    return ScriptedRuntime(mesh)
"""

CHECKS = """
import pytest

from conformance.spec.catalogue import stand_in
from conformance.checks import ALLOW_ANY, REGISTRY_ONLY
from conformance.probe.outcomes import CONN_REFUSED, TLS_RESET, http
from conformance.checks.gateway_hop import PLAINTEXT


@stand_in("EGW-01")
def test_passes(step, sleep, runtime):
    runtime.outcome = http(301)
    step.mesh(outbound=ALLOW_ANY)
    sleep.curl("-sI", "http://aliyun.com").converges_to(http(301))


@stand_in("EGW-02")
def test_fails(step, sleep, runtime):
    runtime.outcome = http(200)
    step.mesh(outbound=REGISTRY_ONLY)
    step.apply("egw/service-entry.yaml")
    sleep.curl("-sI", "http://aliyun.com").is_denied(http(502))


@stand_in("EGW-03")
def test_skipped(step, sleep):
    pytest.skip("the installed Istio has no egress gateway")


@stand_in("EGW-04")
def test_adapted(step, sleep, egress_gateway, runtime):
    runtime.outcome = http(301)
    step.apply("egw/service-entry.yaml", "egw/gateway.yaml", "egw/virtual-service.yaml")
    step.sidecars_reach(egress_gateway, over=PLAINTEXT, namespace=sleep.namespace)
    r = sleep.curl("-sI", "http://aliyun.com").converges_to(http(301))
    egress_gateway.log_for(r).has(response_code=301)


@stand_in("ETP-02")
def test_deviation_observed(step, sleep_a, runtime):
    runtime.outcome = TLS_RESET
    sleep_a.curl("-sI", "https://www.httpbin.org").is_denied(TLS_RESET)


@stand_in("ETP-03")
def test_deviation_fails(step, nginx, egress_gateway, runtime):
    runtime.outcome = CONN_REFUSED
    nginx.curl("-sI", "https://www.httpbin.org").is_denied(TLS_RESET)
"""

IMPLEMENTATION = """\
organization: example.com
project: example-mesh
url: https://example.com/mesh
version: "2.4.1"
contact: ["@example/mesh-maintainers"]
"""


@dataclass(frozen=True)
class SyntheticRun:
    returncode: int
    stdout: str
    report_dir: Path
    report: dict[str, Any]
    report_json: dict[str, Any]
    planted_secret: str
    deleted: list[str]
    step_summary: str

    def check(self, check_id: str) -> dict[str, Any]:
        (found,) = [c for p in self.report["profiles"] for c in p["checks"] if c["id"] == check_id]
        check: dict[str, Any] = found
        return check

    def profile(self, name: str) -> dict[str, Any]:
        (found,) = [p for p in self.report["profiles"] if p["name"] == name]
        profile: dict[str, Any] = found
        return profile

    def allure_results(self) -> list[dict[str, Any]]:
        results = sorted((self.report_dir / "allure-results").glob("*-result.json"))
        return [json.loads(path.read_text(encoding="utf-8")) for path in results]

    def allure_result(self, check_id: str) -> dict[str, Any]:
        (found,) = [r for r in self.allure_results() if {"name": "story", "value": check_id} in r.get("labels", [])]
        return found


def synthetic_run(directory: Path, *args: str) -> SyntheticRun:
    """Run the synthetic checks in ``directory`` (a fresh one per run) and read what the run wrote."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (directory / "test_synthetic.py").write_text(CHECKS, encoding="utf-8")
    (directory / "implementation.yaml").write_text(IMPLEMENTATION, encoding="utf-8")
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "contexts: [{name: synthetic, context: {cluster: c, user: u}}]\ncurrent-context: synthetic\n",
        encoding="utf-8",
    )
    report_dir = directory / "reports"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EGRESS_", "GITHUB_"))}
    env.update(
        PLANTED_SECRET_FILE=str(directory / "planted.pem"),
        DELETED_FILE=str(directory / "deleted.txt"),
        SYNTHETIC_KUBECONFIG=str(kubeconfig),
        GITHUB_STEP_SUMMARY=str(directory / "step-summary.md"),
    )
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "conformance.harness.plugin",
            "-p",
            "no:cacheprovider",
            "-m",
            "egress",
            "--kubeconfig",
            str(kubeconfig),
            "--mesh-mode",
            "sidecar",
            f"--report-dir={report_dir}",
            "--implementation-file",
            str(directory / "implementation.yaml"),
            "-rA",
            *args,
        ],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report_path = report_dir / "conformance-report.yaml"
    if not report_path.is_file():
        raise AssertionError(f"no report written:\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}")
    deleted = directory / "deleted.txt"
    summary = directory / "step-summary.md"
    return SyntheticRun(
        returncode=completed.returncode,
        stdout=completed.stdout + completed.stderr,
        report_dir=report_dir,
        report=yaml.safe_load(report_path.read_text(encoding="utf-8")),
        report_json=json.loads((report_dir / "conformance-report.json").read_text(encoding="utf-8")),
        planted_secret=(directory / "planted.pem").read_text(encoding="utf-8"),
        deleted=deleted.read_text(encoding="utf-8").splitlines() if deleted.is_file() else [],
        step_summary=summary.read_text(encoding="utf-8") if summary.is_file() else "",
    )
