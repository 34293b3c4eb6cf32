"""The plugin as an installed pytest plugin: loaded once, through its entry point, from any directory.

These tests run the virtualenv's own ``pytest`` executable in a temporary directory outside the checkout,
as a user would, so neither the checkout's conftest nor its pyproject takes part.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import conformance.plugin
from conformance import PROJECT_ROOT

PYTEST = Path(sys.executable).with_name("pytest")

EGRESS_TEST = """
import pytest

@pytest.mark.egress
def test_scenario():
    pass
"""


def run_pytest_outside(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert not cwd.resolve().is_relative_to(PROJECT_ROOT.resolve())
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("EGRESS_", "PYTEST_")) and name != "PYTHONPATH"
    }
    return subprocess.run(
        [str(PYTEST), "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """An empty working directory outside the checkout."""
    directory = tmp_path / "elsewhere"
    directory.mkdir()
    return directory


def test_the_plugin_is_registered_once_through_its_entry_point(pytestconfig: pytest.Config) -> None:
    manager = pytestconfig.pluginmanager
    names = [name for name, plugin in manager.list_name_plugin() if plugin is conformance.plugin]
    assert names == ["conformance.plugin"]
    distributions = [
        dist.project_name for plugin, dist in manager.list_plugin_distinfo() if plugin is conformance.plugin
    ]
    assert distributions == ["egress-conformance"]


def test_kubeconfig_outside_the_checkout_is_validated_not_taken_for_a_test_path(outside: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("clusters: [unclosed\n")
    done = run_pytest_outside(outside, "-m", "egress", "--kubeconfig", str(garbage))
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert f"--kubeconfig: {garbage} is not a readable YAML kubeconfig" in done.stderr
    assert "unrecognized arguments" not in done.stderr
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("kind", ["proc", "under-a-file"])
def test_unusable_report_dir_is_named_and_nothing_is_created(outside: Path, tmp_path: Path, kind: str) -> None:
    if kind == "proc":
        report_dir, message = "/proc/egress-reports", "--report-dir: '/proc/egress-reports' cannot be created"
    else:
        regular = tmp_path / "file"
        regular.write_text("")
        report_dir, message = str(regular / "reports"), f"--report-dir: '{regular}/reports' lies under {regular}"
    done = run_pytest_outside(outside, "-m", "egress", "--report-dir", report_dir)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert message in done.stderr
    assert "INTERNALERROR" not in done.stdout + done.stderr
    assert list(outside.iterdir()) == []
    assert not Path(report_dir).exists()


def test_options_with_paths_outside_the_checkout_run_the_scenarios(outside: Path, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "k.yaml"
    kubeconfig.write_text(
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    (outside / "test_scenarios.py").write_text(EGRESS_TEST)
    report_dir = tmp_path / "out"
    done = run_pytest_outside(
        outside, "-m", "egress", "--kubeconfig", str(kubeconfig), "--report-dir", str(report_dir), "--strict-markers"
    )
    assert done.returncode == pytest.ExitCode.OK, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert (report_dir / "conformance-report.yaml").is_file()
