"""The HTML report: the README's command renders a plan run's Allure results with the pinned Allure 3, and
the page, opened in headless Chromium, shows every planned check.

Needs Node.js with ``npm ci --prefix tools/allure`` done and Chromium (``chromium`` on PATH, or
``EGRESS_CHROMIUM``); skipped without them, unless ``EGRESS_REQUIRE_HTML_REPORT=1`` (``.ci/run``), which
turns the skip into a failure. ``EGRESS_HTML_REPORT_DIR`` keeps the rendered page and its screenshot.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conformance import PROJECT_ROOT
from conformance.core.evidence import CATEGORIES
from tests.browser import render_allure_report
from tests.plan_run import PlanRun

TOOLS = PROJECT_ROOT / "tools" / "allure"
ALLURE = TOOLS / "node_modules" / ".bin" / "allure"
README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
REQUIRED = os.environ.get("EGRESS_REQUIRE_HTML_REPORT") == "1"
RENDER_SECONDS = 300


def readme_render_commands() -> list[list[str]]:
    """The README's commands that render the HTML report (the block that runs `allure generate`)."""
    blocks = re.findall(r"```bash\n(.+?)\n```", README, re.S)
    (block,) = [b for b in blocks if "allure generate" in b]
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


def chromium_binary() -> str | None:
    return os.environ.get("EGRESS_CHROMIUM") or shutil.which("chromium")


def missing_tools() -> list[str]:
    missing = []
    if not ALLURE.is_file():
        missing.append("Allure 3 (run `npm ci --prefix tools/allure`)")
    if chromium_binary() is None:
        missing.append("Chromium (`apt-get install -y chromium`, or EGRESS_CHROMIUM)")
    return missing


def test_readme_renders_with_the_pinned_allure() -> None:
    install, generate = readme_render_commands()
    assert install == ["npm", "ci", "--prefix", "tools/allure"]
    assert generate[:2] == ["tools/allure/node_modules/.bin/allure", "generate"]
    assert generate[generate.index("--config") + 1] == "tools/allure/allurerc.yaml"
    package = json.loads((TOOLS / "package.json").read_text())
    lock = json.loads((TOOLS / "package-lock.json").read_text())
    pinned = package["dependencies"]["allure"]
    assert re.fullmatch(r"3\.\d+\.\d+", pinned), "pin an exact Allure 3 release"
    assert lock["packages"]["node_modules/allure"]["version"] == pinned
    assert "node_modules/" in (PROJECT_ROOT / ".gitignore").read_text().splitlines()


def test_allure3_configuration_holds_the_harness_categories() -> None:
    config = yaml.safe_load((TOOLS / "allurerc.yaml").read_text())
    assert config["categories"] == [{k: v for k, v in c.items() if k != "description"} for c in CATEGORIES]
    assert config["plugins"]["awesome"]["options"]["singleFile"] is True


@pytest.fixture(scope="module")
def rendered(catalogue_plan: PlanRun) -> tuple[Path, float]:
    missing = missing_tools()
    if missing:
        message = "the HTML report needs " + " and ".join(missing)
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    report_dir = catalogue_plan.report_dir
    _, generate = readme_render_commands()
    # The README's command, with its report directory pointed at the plan run's.
    command = [
        word.replace("reports/", f"{report_dir}/", 1) if word.startswith("reports/") else word for word in generate
    ]
    started = time.monotonic()
    completed = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=RENDER_SECONDS, check=False
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return report_dir / "html" / "index.html", elapsed


def test_rendered_page_shows_every_planned_check(catalogue_plan: PlanRun, rendered: tuple[Path, float]) -> None:
    index, render_seconds = rendered
    binary = chromium_binary()
    assert binary is not None
    keep = os.environ.get("EGRESS_HTML_REPORT_DIR")
    screenshot = (Path(keep) if keep else index.parent) / "html-report.png"
    page = render_allure_report(binary, index, screenshot)
    planned = {check["id"] for check in catalogue_plan.plan["checks"]}
    assert planned >= {"EGW-01", "EGW-04", "XW-06"}
    assert sorted(check_id for check_id in planned if check_id not in page.text) == []
    assert page.leaves == len(catalogue_plan.plan["checks"])
    assert "EGRESS-SIDECAR" in page.text and "EXTERNAL-WORLD" in page.text
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    if keep:
        shutil.copy2(index, Path(keep) / "index.html")
    print(f"rendered in {render_seconds:.1f}s: {index.stat().st_size} bytes; screenshot {screenshot}")
