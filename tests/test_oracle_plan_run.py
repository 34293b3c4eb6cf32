"""`pytest -m egress --plan --oracle`: every planned check judged by the routing oracle, in its report entry.

These run the real plugin and the real oracle binary (built with Go on first use, then cached), like
tests/test_oracle.py; without Go they are skipped, unless EGRESS_REQUIRE_ORACLE=1 makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance import PROJECT_ROOT
from conformance.spec.catalogue import CATALOGUE
from tests.plan_run import run_plan

pytestmark = pytest.mark.skipif(
    shutil.which("go") is None and os.environ.get("EGRESS_REQUIRE_ORACLE") != "1",
    reason="the routing oracle needs Go on PATH (set EGRESS_REQUIRE_ORACLE=1 to make this a failure)",
)


def entries(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for p in report["profiles"] for c in p["checks"]}


@pytest.mark.parametrize("gateway", ["upstream", "labelled"])
def test_every_implemented_check_agrees_or_cannot_be_predicted(tmp_path: Path, gateway: str) -> None:
    run = run_plan(tmp_path, "--oracle", "--plan-gateway", gateway)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    oracle = json.loads((tmp_path / "oracle.json").read_text(encoding="utf-8"))
    verdicts = {(c["id"], c["mode"]): c["oracle"] for c in oracle["checks"]}
    assert "disagrees" not in verdicts.values() or all(
        CATALOGUE[check_id].oracle_disagreement for (check_id, _), v in verdicts.items() if v == "disagrees"
    )
    assert oracle["summary"]["agrees"] >= 20
    # The gateway hop of every sidecar check is predicted the way it is expected, whichever way the gateway
    # pods are labelled (the harness's adaptation follows the label).
    for check_id in ("EGW-04", "NSD-04", "MTLS-03", "MTLS-04a", "MTLS-05", "ETP-01", "ETP-05"):
        assert verdicts[(check_id, "sidecar")] == "agrees", check_id
    report = entries(run.report)
    assert report["EGW-04"]["oracle"]["oracle"] == "agrees"
    assert run.plan["egressGateway"]["tlsModeLabel"] is (gateway == "labelled")


def test_a_disagreement_fails_the_plan_run_and_names_the_hop(tmp_path: Path) -> None:
    module = tmp_path / "test_wrong.py"
    module.write_text(
        "from conformance.spec.catalogue import stand_in\n"
        "from conformance.checks import REGISTRY_ONLY, http\n"
        "@stand_in('EGW-01')\n"
        "def test_expects_an_answer_registry_only_cannot_give(step, sleep):\n"
        "    step.mesh(outbound=REGISTRY_ONLY)\n"
        "    sleep.curl('-sI', 'http://aliyun.com').converges_to(http(301))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EGRESS_")}
    reports = tmp_path / "reports"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(module),
            f"--rootdir={PROJECT_ROOT}",
            "-c",
            str(PROJECT_ROOT / "pyproject.toml"),
            "-m",
            "egress",
            "--plan",
            "--oracle",
            "--mesh-mode",
            "sidecar",
            "-p",
            "no:cacheprovider",
            f"--report-dir={reports}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == pytest.ExitCode.TESTS_FAILED, output[-4000:]
    assert "routing oracle DISAGREES with EGW-01 (sidecar)" in output
    assert "sidecar default/sleep" in output
    oracle = json.loads((reports / "oracle.json").read_text(encoding="utf-8"))
    (verdict,) = oracle["checks"]
    assert verdict["oracle"] == "disagrees"
