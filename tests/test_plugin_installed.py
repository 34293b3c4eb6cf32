"""The plugin as an installed pytest plugin: loaded once, through its entry point, from any directory.

The runs from outside use the virtualenv's own ``pytest`` executable in a temporary directory outside the
checkout, as a user would, so neither the checkout's conftest nor its pyproject takes part; what needs no
such directory runs in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import conformance.harness.plugin
from conformance import PROJECT_ROOT

PYTEST = Path(sys.executable).with_name("pytest")

EGRESS_TEST = """
import pytest

@pytest.mark.egress
def test_scenario():
    pass
"""


@dataclass(frozen=True)
class OutsideRun:
    """One pytest run from a directory outside the checkout, and what it was given."""

    cwd: Path
    returncode: int
    stdout: str
    stderr: str
    #: The paths the case passed (kubeconfig, report directory, ...), by role.
    paths: dict[str, Path]


def _environment() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("EGRESS_", "PYTEST_")) and name != "PYTHONPATH"
    }


KUBECONFIG = (
    "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
    "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
)


@pytest.fixture(scope="module")
def outside_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OutsideRun]:
    """Every case's run, started together (each is a separate pytest process) and awaited."""
    cases: dict[str, tuple[list[str], dict[str, Path]]] = {}
    root = tmp_path_factory.mktemp("outside")
    assert not root.resolve().is_relative_to(PROJECT_ROOT.resolve())

    garbage = root / "garbage.yaml"
    garbage.write_text("clusters: [unclosed\n")
    cases["garbage-kubeconfig"] = (["-m", "egress", "--kubeconfig", str(garbage)], {"kubeconfig": garbage})

    cases["report-dir-in-proc"] = (["-m", "egress", "--report-dir", "/proc/egress-reports"], {})

    kubeconfig = root / "k.yaml"
    kubeconfig.write_text(KUBECONFIG)
    report_dir = root / "out"
    cases["valid-paths"] = (
        ["-m", "egress", "--kubeconfig", str(kubeconfig), "--report-dir", str(report_dir), "--strict-markers"],
        {"report_dir": report_dir},
    )

    started: dict[str, tuple[Path, subprocess.Popen[str]]] = {}
    for name, (args, _) in cases.items():
        cwd = root / name
        cwd.mkdir()
        if name == "valid-paths":
            (cwd / "test_scenarios.py").write_text(EGRESS_TEST)
        command = [str(PYTEST), "-p", "no:cacheprovider", *args]
        process = subprocess.Popen(
            command, cwd=cwd, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started[name] = (cwd, process)
    runs = {}
    for name, (cwd, process) in started.items():
        stdout, stderr = process.communicate(timeout=120)
        runs[name] = OutsideRun(cwd, process.returncode, stdout, stderr, cases[name][1])
    return runs


def test_the_plugin_is_registered_once_through_its_entry_point(pytestconfig: pytest.Config) -> None:
    manager = pytestconfig.pluginmanager
    names = [name for name, plugin in manager.list_name_plugin() if plugin is conformance.harness.plugin]
    assert names == ["conformance.harness.plugin"]
    distributions = [
        dist.project_name for plugin, dist in manager.list_plugin_distinfo() if plugin is conformance.harness.plugin
    ]
    assert distributions == ["egress-conformance"]


def test_kubeconfig_outside_the_checkout_is_validated_not_taken_for_a_test_path(
    outside_runs: dict[str, OutsideRun],
) -> None:
    run = outside_runs["garbage-kubeconfig"]
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    assert f"--kubeconfig: {run.paths['kubeconfig']} is not a readable YAML kubeconfig" in run.stderr
    assert "unrecognized arguments" not in run.stderr
    assert list(run.cwd.iterdir()) == []


def test_report_dir_that_cannot_be_created_is_named_and_nothing_is_created(
    outside_runs: dict[str, OutsideRun],
) -> None:
    run = outside_runs["report-dir-in-proc"]
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    assert "--report-dir: '/proc/egress-reports' cannot be created or written" in run.stderr
    assert "INTERNALERROR" not in run.stdout + run.stderr
    assert list(run.cwd.iterdir()) == []


def test_report_dir_under_a_regular_file_is_named_and_nothing_is_created(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EGRESS_REPORT_DIR", raising=False)
    regular = tmp_path / "file"
    regular.write_text("")
    pytester.makepyfile(test_scenarios=EGRESS_TEST)
    before = sorted(pytester.path.iterdir())
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-m", "egress", "--report-dir", f"{regular}/reports"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--report-dir: '{regular}/reports' lies under {regular}, which is not a directory*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert sorted(pytester.path.iterdir()) == before
    assert regular.is_file()


def test_options_with_paths_outside_the_checkout_run_the_scenarios(outside_runs: dict[str, OutsideRun]) -> None:
    run = outside_runs["valid-paths"]
    assert run.returncode == pytest.ExitCode.OK, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    assert (run.paths["report_dir"] / "conformance-report.yaml").is_file()
