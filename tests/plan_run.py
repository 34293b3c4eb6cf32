"""A plan run of the whole catalogue, shared by the tests that read its output.

``pytest -m egress --plan`` over both data-plane modes, in a subprocess from the checkout (the real
scenario modules, the real plugin, no cluster): every line of scenario code runs, and the plan, the
conformance report and the printed plan are kept for the tests to inspect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance import PROJECT_ROOT


@dataclass(frozen=True)
class PlanRun:
    returncode: int
    stdout: str
    stderr: str
    plan: dict[str, Any]
    report: dict[str, Any]
    report_dir: Path

    def check(self, check_id: str, mode: str | None = None) -> dict[str, Any]:
        found = [c for c in self.plan["checks"] if c["id"] == check_id and (mode is None or c["mode"] == mode)]
        if len(found) != 1:
            raise LookupError(f"{len(found)} planned runs of {check_id} (mode {mode})")
        planned: dict[str, Any] = found[0]
        return planned


def run_plan(report_dir: Path, *extra: str) -> PlanRun:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EGRESS_")}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "egress",
            "--plan",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--report-dir={report_dir}",
            *extra,
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    plan_path = report_dir / "plan.json"
    report_path = report_dir / "conformance-report.yaml"
    plan = json.loads(plan_path.read_text(encoding="utf-8")) if plan_path.is_file() else {}
    report = yaml.safe_load(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    return PlanRun(completed.returncode, completed.stdout, completed.stderr, plan, report, report_dir)


@pytest.fixture(scope="session")
def catalogue_plan(tmp_path_factory: pytest.TempPathFactory) -> PlanRun:
    """The plan of every implemented check, both data-plane modes."""
    result = run_plan(tmp_path_factory.mktemp("catalogue-plan"))
    assert result.returncode == 0, f"plan run failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    return result
