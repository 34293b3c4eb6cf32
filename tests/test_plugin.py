"""The plugin's gate: plain pytest skips the e2e scenarios with one reason; `-m egress` needs a cluster."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conformance.harness.plugin import E2E_SKIP_REASON, e2e_requested

pytestmark = pytest.mark.usefixtures("isolated_environment")

SCENARIOS = """
import pytest

def test_offline():
    assert True

@pytest.mark.egress
def test_scenario():
    assert True
"""

MESH_SCENARIOS = """
import pytest

@pytest.fixture(scope="session")
def mesh(request):
    return request.param

@pytest.mark.egress
@pytest.mark.sidecar
def test_sidecar_only(mesh):
    assert mesh.value == "sidecar"

@pytest.mark.egress
def test_any_mode(mesh):
    pass
"""


@pytest.fixture
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("EGRESS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("EGRESS_CACHE_DIR", str(tmp_path / "cache"))


def no_docker_path(tmp_path: Path, docker_script: str | None) -> str:
    """A PATH with the interpreter's directory and, optionally, a fake `docker`."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    if docker_script is not None:
        docker = bindir / "docker"
        docker.write_text(f"#!/bin/sh\n{docker_script}\n")
        docker.chmod(0o755)
    return os.pathsep.join([str(bindir), str(Path(sys.executable).parent), "/usr/bin/env-only-not-here"])


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in this process (the plugin comes from its entry point, as in a user's run)."""
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)


def test_plain_pytest_skips_scenarios_with_one_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mix=SCENARIOS)
    result = run(pytester, "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED*{E2E_SKIP_REASON}*"])


@pytest.mark.parametrize("docker", [None, "echo 'Cannot connect to the Docker daemon' >&2; exit 1"])
def test_egress_without_engine_or_kubeconfig_fails_fast(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, docker: str | None
) -> None:
    pytester.makepyfile(test_mix=SCENARIOS)
    monkeypatch.setenv("PATH", no_docker_path(tmp_path, docker))
    started = time.monotonic()
    result = run(pytester, "-m", "egress")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert time.monotonic() - started < 30
    output = result.stdout.str() + result.stderr.str()
    assert "no container engine" in output
    assert "--kubeconfig" in output
    assert "passed" not in result.stdout.str()


def test_egress_with_kubeconfig_needs_no_engine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    pytester.makepyfile(test_mix=SCENARIOS)
    monkeypatch.setenv("PATH", no_docker_path(tmp_path, None))
    result = run(pytester, "-m", "egress", "--kubeconfig", str(kubeconfig), "-p", "no:junitxml")
    result.assert_outcomes(passed=1, deselected=1)


def test_bad_option_stops_before_anything_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mix=SCENARIOS)
    result = run(pytester, "--mesh-mode", "hybrid")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mesh-mode: 'hybrid' is not one of sidecar, ambient, both*"])


def test_environment_twin_is_validated_too(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_mix=SCENARIOS)
    monkeypatch.setenv("EGRESS_ISTIO", "helm")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--istio: 'helm' is not one of install, existing*"])


def kubeconfig_file(tmp_path: Path) -> Path:
    path = tmp_path / "kc"
    path.write_text(
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    return path


def test_mesh_is_parametrised_by_selected_and_supported_modes(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_modes=MESH_SCENARIOS)
    result = run(pytester, "-m", "egress", "--kubeconfig", str(kubeconfig_file(tmp_path)), "-v", "-p", "no:junitxml")
    # A check without a mode marker does not depend on the data plane: it runs once, in the first mode.
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(["*test_sidecar_only?sidecar? PASSED*", "*test_any_mode?sidecar? PASSED*"])
    assert "test_any_mode[ambient]" not in result.stdout.str()


def test_a_check_of_a_mode_the_run_did_not_select_is_deselected_not_skipped(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_modes=MESH_SCENARIOS)
    result = run(
        pytester,
        "-m",
        "egress",
        "--mesh-mode",
        "ambient",
        "--kubeconfig",
        str(kubeconfig_file(tmp_path)),
        "-rs",
        "-p",
        "no:junitxml",
    )
    result.assert_outcomes(passed=1, deselected=1)
    assert "runs on the sidecar data plane" not in result.stdout.str()


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("egress", True),
        ("egress and sidecar", True),
        ("ambient", True),
        ("not egress", False),
        ("", False),
        ("slow", False),
        ("not slow and external_world", True),
    ],
)
def test_e2e_requested(expr: str, expected: bool) -> None:
    assert e2e_requested(expr) is expected


REPORTED = """
import pytest

@pytest.fixture(scope="session")
def mesh(request):
    return request.param

@pytest.mark.egress
@pytest.mark.egress_sidecar
@pytest.mark.sidecar
@pytest.mark.check("EGW-01")
def test_egw01(mesh):
    pass

@pytest.mark.egress
@pytest.mark.egress_sidecar
@pytest.mark.sidecar
@pytest.mark.check("EGW-02")
def test_egw02(mesh):
    assert False, "expected http(502)"

@pytest.mark.egress
@pytest.mark.egress_ambient
@pytest.mark.ambient
@pytest.mark.check("AMB-X4")
def test_amb_x4(mesh):
    pytest.skip("ztunnel does not implement outboundTrafficPolicy")
"""


def test_conformance_report_lists_every_check(pytester: pytest.Pytester, tmp_path: Path) -> None:
    import yaml

    pytester.makepyfile(test_report=REPORTED)
    report_dir = tmp_path / "reports"
    result = run(
        pytester, "-m", "egress", "--kubeconfig", str(kubeconfig_file(tmp_path)), "--report-dir", str(report_dir)
    )
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    report = yaml.safe_load((report_dir / "conformance-report.yaml").read_text())
    assert report["kind"] == "ConformanceReport"
    assert report["environment"]["kubernetes"]["provider"] == "existing"
    assert report["environment"]["kind"] is None
    profiles = {p["name"]: p for p in report["profiles"]}
    sidecar = profiles["EGRESS-SIDECAR"]
    assert sidecar["summary"]["result"] == "failure"
    statistics = sidecar["summary"]["statistics"]
    assert (statistics["passed"], statistics["failed"], statistics["skipped"]) == (1, 1, 0)
    assert sidecar["failedChecks"] == ["EGW-02"]
    ran = [(c["id"], c["mode"], c["result"]) for c in sidecar["checks"] if "test" in c]
    assert ran == [("EGW-01", "sidecar", "passed"), ("EGW-02", "sidecar", "failed")]
    failed = next(c for c in sidecar["checks"] if c["id"] == "EGW-02")
    assert failed["reason"] == "call failed: AssertionError: expected http(502)"
    # Every other check of the catalogue is there too, never silently missing.
    listed = {c["id"] for c in sidecar["checks"]}
    assert {"EGW-03", "NSD-01", "MTLS-04b", "ETP-05"} <= listed
    ambient = profiles["EGRESS-AMBIENT"]
    assert ambient["summary"]["result"] == "partial"
    skipped = [c for c in ambient["notPassedChecks"] if c["result"] == "skipped"]
    assert skipped == [
        {
            "id": "AMB-X4",
            "mode": "ambient",
            "result": "skipped",
            "reason": "ztunnel does not implement outboundTrafficPolicy",
        }
    ]
    assert report["run"]["certifiable"] is False
    assert (report_dir / "junit.xml").is_file()
    assert (report_dir / "allure-results" / "environment.properties").is_file()
    assert (report_dir / "allure-results" / "categories.json").is_file()
    assert json.loads((report_dir / "conformance-report.json").read_text()) == report


def test_plain_pytest_writes_no_report(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_report=REPORTED)
    report_dir = tmp_path / "reports"
    run(pytester, "--report-dir", str(report_dir)).assert_outcomes(skipped=3)
    assert not report_dir.exists()


class IstiodOnly:
    """Answers `get` like a cluster whose istio-system holds just the given istiod Deployment."""

    def __init__(self, image: str | None) -> None:
        self.image = image

    def get(self, ref: object) -> dict[str, Any] | None:
        if self.image is None or getattr(ref, "name", None) != "istiod":
            return None
        return {"spec": {"template": {"spec": {"containers": [{"name": "discovery", "image": self.image}]}}}}


def test_never_installs_over_an_existing_istio_on_an_unmanaged_cluster() -> None:
    from conformance.harness.live_run import refuse_to_replace_istio

    assert refuse_to_replace_istio(IstiodOnly(None)) is None  # type: ignore[arg-type]
    message = refuse_to_replace_istio(IstiodOnly("docker.io/istio/pilot:1.29.6"))  # type: ignore[arg-type]
    assert message is not None
    assert "Istio 1.29.6 is already installed" in message and "--istio existing" in message
    odd = refuse_to_replace_istio(IstiodOnly("registry.example/pilot@sha256:" + "a" * 64))  # type: ignore[arg-type]
    assert odd is not None and "istio-system/istiod" in odd


MODES_BY_MODULE_ORDER = """
import pytest

@pytest.fixture(scope="session")
def mesh(request):
    print(f"install {request.param.value}")
    yield request.param
    print(f"uninstall {request.param.value}")
"""


def test_sidecar_mode_runs_before_ambient_whatever_the_module_order(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makeconftest(MODES_BY_MODULE_ORDER)
    pytester.makepyfile(
        test_a_ambient="import pytest\n@pytest.mark.egress\n@pytest.mark.ambient\ndef test_amb(mesh): pass\n",
        test_b_sidecar="import pytest\n@pytest.mark.egress\n@pytest.mark.sidecar\ndef test_side(mesh): pass\n",
        test_c_both="import pytest\n@pytest.mark.egress\ndef test_both(mesh): pass\n",
    )
    result = run(
        pytester, "-m", "egress", "--kubeconfig", str(kubeconfig_file(tmp_path)), "-v", "-s", "-p", "no:junitxml"
    )
    result.assert_outcomes(passed=3)
    lifecycle = re.findall(r"(?:un)?install (?:sidecar|ambient)", result.stdout.str())
    assert lifecycle == ["install sidecar", "uninstall sidecar", "install ambient", "uninstall ambient"]
    tests = re.findall(r"(test_\w+\[\w+\]) ", result.stdout.str())
    assert tests == ["test_side[sidecar]", "test_both[sidecar]", "test_amb[ambient]"]


def test_a_run_that_stops_early_still_writes_the_report(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import yaml

    pytester.makepyfile(test_report=REPORTED)
    monkeypatch.setenv("PATH", no_docker_path(tmp_path, None))
    report_dir = tmp_path / "reports"
    result = run(pytester, "-m", "egress", f"--report-dir={report_dir}", "-p", "no:junitxml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    report = yaml.safe_load((report_dir / "conformance-report.yaml").read_text())
    assert report["run"]["status"] == "aborted"
    assert "no container engine" in report["run"]["reason"]
    assert report["run"]["certifiable"] is False
    # Nothing was installed or detected: no Istio version is claimed.
    assert report["environment"]["istio"].get("version") is None
    checks = {c["id"]: c for p in report["profiles"] for c in p["checks"]}
    for check_id in ("EGW-01", "EGW-02", "AMB-X4"):
        assert checks[check_id]["result"] == "not-run"
        assert checks[check_id]["reason"].startswith("not run: no container engine")


MISSING_GATEWAY = """
import contextlib
import pytest
from conformance.runtimes.planning import PlanRuntime
from conformance.settings.options import MeshMode
from conformance.core.timeouts import DEFAULT_TIMEOUTS

class NoGateway(PlanRuntime):
    def egress_gateway(self):
        return None

@pytest.fixture(scope="session")
def runtime(mesh):
    return NoGateway(MeshMode.SIDECAR, DEFAULT_TIMEOUTS)
"""


def test_checks_needing_the_egress_gateway_skip_when_the_mesh_has_none(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(MISSING_GATEWAY)
    pytester.makepyfile(
        test_gateway=(
            "from conformance.spec.catalogue import stand_in\n"
            "@stand_in('EGW-03')\n"
            "def test_needs_gateway(step, egress_gateway):\n"
            "    raise AssertionError('must not run')\n"
            "@stand_in('EGW-01')\n"
            "def test_no_gateway_needed(step, sleep):\n"
            "    pass\n"
        )
    )
    result = run(pytester, "-m", "egress", "--plan", "--mesh-mode", "sidecar", "-rs", "-p", "no:junitxml")
    # In a plan run the check that ran is planned (reported skipped), never passed.
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*the installed Istio has no egress gateway*", "*planned: a plan run walks*"])


def test_bad_implementation_file_stops_the_run_naming_the_option(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_mix=SCENARIOS)
    path = tmp_path / "implementation.yaml"
    path.write_text("organization: example.com\n")
    result = run(pytester, "-m", "egress", "--plan", "--implementation-file", str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert int(result.ret) == 4
    result.stderr.fnmatch_lines(["*--implementation-file: implementation.yaml: missing field(s) project, url*"])
    assert "passed" not in result.stdout.str()


KEPT_MESH = """
import os
from pathlib import Path

import pytest

from conformance.platform.cluster import ClusterHandle
from conformance.runtimes.planning import PlanRuntime
from conformance.core.timeouts import DEFAULT_TIMEOUTS

LOG = Path(os.environ["INSTALLER_LOG"])


class Installer:
    istioctl = Path("/nonexistent/istioctl")

    def install(self, mode):
        LOG.open("a").write(f"install {mode.value}\\n")

    def uninstall(self):
        LOG.open("a").write("uninstall\\n")


class Runtime(PlanRuntime):
    planning = False

    def collect_failure_evidence(self, run, report_dir):
        from conformance.runtimes.failure_evidence import EvidenceCollection

        return EvidenceCollection(run.check.id, self.mode.value, report_dir)

    def cluster_access(self):
        from conformance.runtimes.failure_evidence import ClusterAccess

        return ClusterAccess(Path("kubeconfig"), None)


@pytest.fixture(scope="session")
def cluster():
    return ClusterHandle("kind-x", Path("kubeconfig"), "kind-x", created=True, managed=True)


@pytest.fixture(scope="session")
def kube():
    return object()


@pytest.fixture(scope="session")
def istio_installer():
    return Installer()


@pytest.fixture(scope="session")
def runtime(mesh):
    return Runtime(mesh.mode, DEFAULT_TIMEOUTS)
"""

KEPT_CHECKS = """
from conformance.spec.catalogue import stand_in


@stand_in("EGW-01")
def test_fails(step):
    assert False, "the mesh let it through"


@stand_in("EGW-02")
def test_after(step):
    pass
"""


@pytest.mark.parametrize("keep", [True, False])
def test_keep_on_failure_leaves_istio_installed_and_stops(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, keep: bool
) -> None:
    log = tmp_path / "installer.log"
    monkeypatch.setenv("INSTALLER_LOG", str(log))
    pytester.makeconftest(KEPT_MESH)
    pytester.makepyfile(test_kept=KEPT_CHECKS)
    args = [
        "-m",
        "egress",
        "--kubeconfig",
        str(kubeconfig_file(tmp_path)),
        "--mesh-mode",
        "sidecar",
        f"--report-dir={tmp_path / 'reports'}",
        "-p",
        "no:junitxml",
    ]
    result = run(pytester, *args, *(["--keep-on-failure"] if keep else []))
    if keep:
        result.assert_outcomes(failed=1)
        assert log.read_text().splitlines() == ["install sidecar"]
        result.stdout.fnmatch_lines(["*kept for inspection (--keep-on-failure)*", "*EGW-01 (sidecar) failed*"])
    else:
        result.assert_outcomes(failed=1, passed=1)
        assert log.read_text().splitlines() == ["install sidecar", "uninstall"]


def test_an_unreachable_api_server_stops_the_run_with_one_message(pytester: pytest.Pytester, tmp_path: Path) -> None:
    import yaml

    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\nusers: [{name: u, user: {}}]\n"
    )
    pytester.makepyfile(
        test_needs_cluster=(
            "import pytest\n"
            "@pytest.mark.egress\n@pytest.mark.sidecar\n@pytest.mark.check('EGW-01')\n"
            "def test_a(kube): pass\n"
            "@pytest.mark.egress\n@pytest.mark.sidecar\n@pytest.mark.check('EGW-02')\n"
            "def test_b(kube): pass\n"
        )
    )
    report_dir = tmp_path / "reports"
    result = run(
        pytester, "-m", "egress", f"--kubeconfig={kubeconfig}", f"--report-dir={report_dir}", "-p", "no:junitxml"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "https://127.0.0.1:1" in output and str(kubeconfig) in output
    assert "Traceback" not in output and "urllib3" not in output
    assert output.count("egress-conformance: ") == 1
    report = yaml.safe_load((report_dir / "conformance-report.yaml").read_text())
    assert report["run"]["status"] == "aborted"
    assert report["environment"]["istio"].get("version") is None
    results = {c["id"]: c["result"] for p in report["profiles"] for c in p["checks"]}
    assert results["EGW-01"] == results["EGW-02"] == "not-run"


RECORDING_RUNTIME = """
import contextlib
import json
import os
import pytest
from conformance.runtimes.planning import PlanRuntime
from conformance.settings.options import MeshMode
from conformance.core.timeouts import DEFAULT_TIMEOUTS

LOG = os.environ["MESH_LOG"]

class Recording(PlanRuntime):
    planning = False

    @contextlib.contextmanager
    def outbound_policy(self, mode):
        with open(LOG, "a") as f:
            f.write(f"set {mode.value}\\n")
        try:
            yield
        finally:
            with open(LOG, "a") as f:
                f.write("restored\\n")

@pytest.fixture(scope="session")
def runtime(mesh):
    return Recording(MeshMode.SIDECAR, DEFAULT_TIMEOUTS)
"""


def test_mesh_setting_is_restored_after_a_failing_check(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "mesh.log"
    monkeypatch.setenv("MESH_LOG", str(log))
    pytester.makeconftest(RECORDING_RUNTIME)
    pytester.makepyfile(
        test_failing=(
            "from conformance.spec.catalogue import stand_in\n"
            "from conformance.checks import REGISTRY_ONLY\n"
            "@stand_in('EGW-02')\n"
            "def test_fails_after_changing_the_mesh(step, sleep):\n"
            "    step.mesh(outbound=REGISTRY_ONLY)\n"
            "    raise AssertionError('the documented outcome did not come')\n"
        )
    )
    result = run(pytester, "-m", "egress", "--plan", "--mesh-mode", "sidecar", "-p", "no:junitxml")
    result.assert_outcomes(failed=1)
    assert log.read_text().splitlines() == ["set REGISTRY_ONLY", "restored"]
