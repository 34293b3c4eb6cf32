"""The README stays true: its options table lists every option, and .ci/run runs its test command."""

from __future__ import annotations

import re

from conformance import PROJECT_ROOT
from conformance.settings import OPTIONS

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_options_table_lists_every_option_and_its_environment_twin() -> None:
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(--[\w-]+)` \| `(\w+)` \|", README, re.M)}
    assert rows == {opt.flag: opt.env for opt in OPTIONS}


def test_exactly_two_setup_commands_main_job_and_tests() -> None:
    setup = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", setup, re.S)
    assert len(commands) == 2
    main_job, tests = commands
    assert main_job.rstrip().endswith("pytest -m egress")
    assert tests.rstrip().endswith(".venv/bin/pytest")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install --quiet -e '.[dev]'" in ci
    assert re.search(r"^\.venv/bin/pytest$", ci, re.M)
    assert "set -euo pipefail" in ci
