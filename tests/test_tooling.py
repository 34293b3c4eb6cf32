"""Every Python file of the checkout is type-checked by a plain `mypy` (its scope lives in pyproject.toml)."""

from __future__ import annotations

import tomllib

from conformance import PROJECT_ROOT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: Modules mypy may skip, and why: their rewrite against a real API server is under way.
UNCHECKED_MODULES = {"tests.test_kube", "tests.fake_apiserver"}


def python_files() -> list[str]:
    skipped = {".venv", "venv", "build", "dist", ".git"}
    return sorted(
        str(path.relative_to(PROJECT_ROOT))
        for path in PROJECT_ROOT.rglob("*.py")
        if not skipped & set(path.relative_to(PROJECT_ROOT).parts) and "fake-bin" not in path.parts
    )


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
