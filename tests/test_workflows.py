"""The GitHub workflows run the suite only as the README does, and the nightly matrix is manifests/versions.yaml.

Every run step that starts the suite must be the README's main command followed by harness options only (no
test paths, no -k/-m narrowing, no second command), after the README's install in the same job. The nightly
matrix is what its `versions` job prints; that job's script is run here and its output compared with the
versions file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance import PROJECT_ROOT
from conformance.report import matrix_summary
from conformance.settings.options import OPTIONS

WORKFLOWS_DIR = PROJECT_ROOT / ".github" / "workflows"
README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
VERSIONS: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "manifests" / "versions.yaml").read_text(encoding="utf-8"))

#: Harness options a workflow or CERTIFICATION.md may pass, and whether each takes a value.
#: --implementation-file (the vendor's description of the Istio under test) belongs to the certification
#: support, --keep-on-failure (keep the kind cluster of a failed run) to the cluster lifecycle.
HARNESS_OPTIONS: dict[str, bool] = {opt.flag: not opt.is_flag for opt in OPTIONS} | {
    "--implementation-file": True,
    "--keep-on-failure": False,
}


def load_workflow(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS_DIR / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    # YAML 1.1 reads the key `on` as the boolean true.
    if True in data:
        data["on"] = data.pop(True)
    return data


def workflows() -> dict[str, dict[str, Any]]:
    return {path.name: load_workflow(path.name) for path in sorted(WORKFLOWS_DIR.glob("*.y*ml"))}


def readme_main_command() -> tuple[str, str]:
    """(install, suite) of the README's main command: ``<install> && <suite>``."""
    setup = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    main_command = re.findall(r"```bash\n(.+?)\n```", setup, re.S)[0].strip()
    install, _, suite = main_command.rpartition(" && ")
    assert install and suite, main_command
    return install, suite


def run_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for step in job.get("steps", []) if "run" in step]


def words(command: str) -> list[str]:
    return shlex.split(command.replace("\\\n", " "))


def starts_the_suite(command: str) -> bool:
    return any(Path(word).name == "pytest" for word in words(command))


def suite_steps() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    return [
        (name, job_id, job, step)
        for name, workflow in workflows().items()
        for job_id, job in workflow["jobs"].items()
        for step in run_steps(job)
        if starts_the_suite(step["run"])
    ]


def options_of(command: str) -> dict[str, str | None]:
    """The options after the README's suite command; fails on anything that is not a harness option."""
    _, suite = readme_main_command()
    tokens = words(command)
    prefix = words(suite)
    assert tokens[: len(prefix)] == prefix, f"{command!r} does not start with the README's `{suite}`"
    options: dict[str, str | None] = {}
    rest = tokens[len(prefix) :]
    while rest:
        flag = rest.pop(0)
        assert flag in HARNESS_OPTIONS, f"{flag!r} in {command!r} is not a harness option"
        assert flag not in options, f"{flag} given twice in {command!r}"
        if not HARNESS_OPTIONS[flag]:
            options[flag] = None
            continue
        assert rest and not rest[0].startswith("-"), f"{flag} without a value in {command!r}"
        options[flag] = rest.pop(0)
    return options


# --- every workflow --------------------------------------------------------------------------------------


def test_the_workflows_are_ci_nightly_and_certify() -> None:
    assert set(workflows()) == {"ci.yml", "nightly.yml", "certify.yml"}


def test_every_job_has_a_timeout_and_reads_the_repository_only() -> None:
    for name, workflow in workflows().items():
        assert workflow.get("permissions") == {"contents": "read"}, name
        for job_id, job in workflow["jobs"].items():
            assert isinstance(job.get("timeout-minutes"), int), f"{name}: job {job_id} has no timeout-minutes"


def test_every_step_that_starts_the_suite_is_the_readme_command_with_options() -> None:
    found = suite_steps()
    assert {(name, job_id) for name, job_id, _, _ in found} == {
        ("nightly.yml", "conformance"),
        ("certify.yml", "certify"),
    }
    install, _ = readme_main_command()
    for name, job_id, job, step in found:
        options_of(step["run"])
        for separator in ("&&", "||", ";", "|", "\n"):
            assert separator not in step["run"].strip(), f"{name}/{job_id}: the suite step runs more than one command"
        runs = [s["run"].strip() for s in run_steps(job)]
        assert install in runs[: runs.index(step["run"].strip())], f"{name}/{job_id}: no README install first"


def test_options_of_refuses_what_narrows_or_extends_the_run() -> None:
    _, suite = readme_main_command()
    assert options_of(f"{suite} --mesh-mode sidecar --keep-cluster") == {
        "--mesh-mode": "sidecar",
        "--keep-cluster": None,
    }
    for narrowed in (f"{suite} -k EGW-01", f"{suite} scenarios/test_egress.py", f"{suite} --mesh-mode"):
        with pytest.raises(AssertionError):
            options_of(narrowed)
    with pytest.raises(AssertionError):
        options_of("python -m pytest -m egress --mesh-mode sidecar")


# --- ci.yml ----------------------------------------------------------------------------------------------


def test_ci_runs_the_ci_script_on_push_and_pull_request() -> None:
    ci = load_workflow("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    (job,) = ci["jobs"].values()
    assert [s["run"] for s in run_steps(job)] == ["bash .ci/run"]
    uses = [s.get("uses", "") for s in job["steps"]]
    assert any(u.startswith("actions/setup-go@") for u in uses), "actionlint in .ci/run is built with Go"


def test_ci_script_checks_format_and_runs_actionlint() -> None:
    script = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.strip() for line in script.splitlines()]
    assert lines.index(".venv/bin/ruff format --check .") == lines.index(".venv/bin/ruff check .") + 1
    assert "github.com/rhysd/actionlint/cmd/actionlint@${ACTIONLINT_VERSION}" in script
    assert "ACTIONLINT_VERSION=v1.7.12" in lines
    assert '"${actionlint_dir}/actionlint" .github/workflows/*.yml' in lines
    assert 'actionlint_dir="${HOME}/.cache/egress-conformance/bin/actionlint-${ACTIONLINT_VERSION}"' in lines


# --- nightly.yml -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nightly() -> dict[str, Any]:
    return load_workflow("nightly.yml")


def printed_matrix(nightly: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Run the `versions` job's matrix step as GitHub would (bash, repository root) and read its output."""
    job = nightly["jobs"]["versions"]
    output_ref = re.fullmatch(r"\$\{\{ steps\.(\w+)\.outputs\.matrix \}\}", job["outputs"]["matrix"])
    assert output_ref is not None
    (step,) = [s for s in job["steps"] if s.get("id") == output_ref.group(1)]
    # The step calls the README install's .venv/bin/python; here that is the interpreter running the tests.
    venv_python = tmp_path / "bin" / "python"
    venv_python.parent.mkdir()
    venv_python.symlink_to(sys.executable)
    script = step["run"].replace(".venv/bin/python", str(venv_python))
    github_output = tmp_path / "github-output"
    subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=PROJECT_ROOT,
        env={**os.environ, "GITHUB_OUTPUT": str(github_output), "PYTHONPATH": str(PROJECT_ROOT)},
        check=True,
        capture_output=True,
        timeout=120,
    )
    (line,) = github_output.read_text(encoding="utf-8").splitlines()
    key, _, value = line.partition("=")
    assert key == "matrix"
    matrix = json.loads(value)
    assert isinstance(matrix, dict)
    return matrix


def test_nightly_matrix_equals_the_versions_file(nightly: dict[str, Any], tmp_path: Path) -> None:
    cell_job = nightly["jobs"]["conformance"]
    assert cell_job["needs"] == "versions"
    assert cell_job["strategy"]["matrix"] == "${{ fromJSON(needs.versions.outputs.matrix) }}"
    assert cell_job["strategy"]["fail-fast"] is False

    matrix = printed_matrix(nightly, tmp_path)

    expected = [
        (minor["release"], mode, kubernetes, node["image"], node["kind"])
        for minor in VERSIONS["istio"]["minors"]
        for mode in ("sidecar", "ambient")
        for kubernetes in dict.fromkeys((minor["kubernetes"]["oldest"], minor["kubernetes"]["newest"]))
        for node in VERSIONS["node_images"]
        if node["kubernetes"] == kubernetes
    ]
    cells = [(c["istio"], c["mode"], c["kubernetes"], c["node_image"], c["kind"]) for c in matrix["include"]]
    assert cells == expected


def test_each_cell_runs_its_istio_mode_and_node_image(nightly: dict[str, Any]) -> None:
    job = nightly["jobs"]["conformance"]
    (step,) = [s for s in run_steps(job) if starts_the_suite(s["run"])]
    options = options_of(step["run"])
    env = {**job.get("env", {}), **step.get("env", {})}

    def resolved(value: str | None) -> str:
        assert value is not None
        return re.sub(r"\$(\w+)", lambda m: str(env[m.group(1)]), value)

    assert resolved(options["--istio-version"]) == "${{ matrix.istio }}"
    assert resolved(options["--mesh-mode"]) == "${{ matrix.mode }}"
    assert resolved(options["--kind-image"]) == "${{ matrix.node_image }}"
    assert resolved(options["--report-dir"]) == "reports/${{ matrix.name }}"


def test_each_cell_records_digests_first_and_uploads_every_report(nightly: dict[str, Any]) -> None:
    job = nightly["jobs"]["conformance"]
    steps = job["steps"]
    runs = [s.get("run", "") for s in steps]
    suite = next(i for i, run in enumerate(runs) if starts_the_suite(run))
    resolve = next(i for i, run in enumerate(runs) if "-m conformance.images resolve --write" in run)
    assert resolve < suite
    html = next(i for i, run in enumerate(runs) if "allure" in run and "generate" in run)
    assert '--output "$REPORT_DIR/html"' in runs[html] and steps[html]["if"] == "always()"
    (upload,) = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()"
    # The whole report directory: conformance report and summary, junit.xml, allure-results/, html/.
    assert upload["with"]["path"] == "${{ env.REPORT_DIR }}/"
    assert upload["with"]["name"] == matrix_summary.ARTIFACT_PREFIX + "${{ matrix.name }}"


def test_summary_job_collects_every_cell(nightly: dict[str, Any]) -> None:
    job = nightly["jobs"]["summary"]
    assert set(job["needs"]) == {"versions", "conformance"}
    assert job["if"].startswith("always()")
    (download,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/download-artifact@")]
    assert download["with"] == {"pattern": matrix_summary.ARTIFACT_PREFIX + "*", "path": "cells"}
    (collect,) = [s for s in run_steps(job) if "-m conformance.report.matrix_summary" in s["run"]]
    assert '--matrix "$MATRIX" --cells cells' in collect["run"]
    assert collect["env"]["MATRIX"] == "${{ needs.versions.outputs.matrix }}"
    assert '>> "$GITHUB_STEP_SUMMARY"' in collect["run"]


# --- certify.yml -----------------------------------------------------------------------------------------


def test_certify_runs_on_the_vendor_cluster_with_the_installed_istio() -> None:
    certify = load_workflow("certify.yml")
    assert set(certify["on"]) == {"workflow_dispatch"}
    job = certify["jobs"]["certify"]
    (step,) = [s for s in run_steps(job) if starts_the_suite(s["run"])]
    options = options_of(step["run"])
    assert options["--istio"] == "existing"
    assert options["--kubeconfig"] == "$RUNNER_TEMP/kubeconfig"
    assert options["--implementation-file"] == "$IMPLEMENTATION_FILE"
    assert step["env"]["IMPLEMENTATION_FILE"] == "${{ inputs.implementation-file }}"
    secret_steps = [s for s in job["steps"] if "secrets." in json.dumps(s)]
    assert [s["env"] for s in secret_steps] == [{"KUBECONFIG_TEXT": "${{ secrets.CERTIFY_KUBECONFIG }}"}]


def test_certify_uploads_the_report_unmodified_with_its_sha256() -> None:
    job = load_workflow("certify.yml")["jobs"]["certify"]
    runs = [s.get("run", "") for s in job["steps"]]
    assert any("sha256sum conformance-report.yaml > conformance-report.yaml.sha256" in run for run in runs)
    (upload,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["with"]["path"] == "${{ env.REPORT_DIR }}/"
    assert job["env"]["REPORT_DIR"] == "reports/certification"
    # Nothing between the run and the upload writes into the report directory except the checksum file.
    after_suite = runs[next(i for i, run in enumerate(runs) if starts_the_suite(run)) + 1 :]
    writes = [run for run in after_suite if "$REPORT_DIR" in run and ">" in run]
    assert all("conformance-report.yaml.sha256" in run or "GITHUB_STEP_SUMMARY" in run for run in writes)


# --- CERTIFICATION.md --------------------------------------------------------------------------------------


def test_certification_guide_runs_the_suite_as_the_readme_does() -> None:
    guide = (PROJECT_ROOT / "CERTIFICATION.md").read_text(encoding="utf-8")
    lines = [
        line.strip()
        for block in re.findall(r"```bash\n(.+?)\n```", guide, re.S)
        for line in block.replace("\\\n", " ").splitlines()
    ]
    suite_lines = [line for line in lines if "pytest" in line]
    # The certification run, the plan of a failed check (no cluster), and the reproduction of the failure.
    assert len(suite_lines) == 3
    certification_run, plan, reproduction = suite_lines
    plan_options, plan_selection = plan.split("#", 1)[0].strip().rsplit(" -k ", 1)
    assert "--plan" in options_of(plan_options) and plan_selection == reproduction.rsplit(" -k ", 1)[1]
    assert options_of(certification_run)["--istio"] == "existing"
    # The reproduction narrows the run to one check with -k (so it certifies nothing); the rest are options.
    narrowed, selection = reproduction.rsplit(" -k ", 1)
    assert re.fullmatch(r"[A-Z]+-\d+[a-z]?", selection)
    assert "--keep-on-failure" in options_of(narrowed)
    certify = (WORKFLOWS_DIR / "certify.yml").read_text(encoding="utf-8")
    assert "CERTIFY_KUBECONFIG" in guide and "secrets.CERTIFY_KUBECONFIG" in certify
    assert "certification-report" in guide and "name: certification-report" in certify
