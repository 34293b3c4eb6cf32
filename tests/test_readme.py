"""The README stays true: its options table lists every option, and .ci/run runs its test command."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conformance import PROJECT_ROOT
from conformance.settings.options import OPTIONS

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
CHECKOUT_ROOT = 'cd "$(git rev-parse --show-toplevel)" && '


def test_options_table_lists_every_option_and_its_environment_twin() -> None:
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(--[\w-]+)` \| `(\w+)` \|", README, re.M)}
    assert rows == {opt.flag: opt.env for opt in OPTIONS}


def setup_commands() -> list[str]:
    setup = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", setup, re.S)


def test_exactly_two_setup_commands_main_job_and_tests() -> None:
    commands = setup_commands()
    assert len(commands) == 2
    main_job, tests = commands
    assert main_job.rstrip().endswith("pytest -m egress")
    assert tests.rstrip().endswith(".venv/bin/pytest")
    # Both start at the checkout's root, whatever directory of the clone they are pasted in.
    assert all(command.startswith(CHECKOUT_ROOT) for command in commands)


@pytest.mark.skipif(shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists(), reason="not a git clone")
def test_setup_commands_reach_the_checkout_root_from_a_subdirectory() -> None:
    for command in setup_commands():
        to_root = command[: command.index("python3 -m venv")]
        for cwd in (PROJECT_ROOT / "tests" / "data", PROJECT_ROOT / "conformance"):
            done = subprocess.run(["bash", "-c", f"{to_root} pwd"], cwd=cwd, capture_output=True, text=True, check=True)
            assert Path(done.stdout.strip()) == PROJECT_ROOT.resolve()


def test_ci_runs_the_readme_test_command() -> None:
    ci = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install --quiet -e '.[dev]'" in ci
    assert re.search(r"^\.venv/bin/pytest$", ci, re.M)
    assert "set -euo pipefail" in ci
