"""Every Python file of the checkout is type-checked by a plain `mypy` (its scope lives in pyproject.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from conformance import PROJECT_ROOT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: Modules mypy may skip, and why: their rewrite against a real API server is under way.
UNCHECKED_MODULES = {"tests.test_kube", "tests.fake_apiserver"}


def python_files() -> list[str]:
    """Every .py file of the checkout, outside hidden directories and virtualenvs."""
    found: list[Path] = []
    for top in PROJECT_ROOT.iterdir():
        if top.name.startswith(".") or top.name in {"venv", "build", "dist"}:
            continue
        if top.is_dir():
            found += top.rglob("*.py")
        elif top.suffix == ".py":
            found.append(top)
    return sorted(str(path.relative_to(PROJECT_ROOT)) for path in found)


def test_mypy_checks_every_python_file() -> None:
    scope = PYPROJECT["tool"]["mypy"]["files"]
    unchecked = [f for f in python_files() if not any(f == s or f.startswith(f"{s}/") for s in scope)]
    assert unchecked == []
    assert PYPROJECT["tool"]["mypy"]["strict"] is True


def test_only_the_named_modules_are_exempt() -> None:
    exempt = {
        module
        for override in PYPROJECT["tool"]["mypy"].get("overrides", [])
        if override.get("ignore_errors")
        for module in override["module"]
    }
    assert exempt == UNCHECKED_MODULES
