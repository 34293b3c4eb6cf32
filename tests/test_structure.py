"""The library's shape: packages layered with no cycle and no up-arrow, each constant defined in one place, each
job done by one piece of code.

Every import of every module counts, including those under ``TYPE_CHECKING`` and inside functions: a cycle
hidden there is still a cycle.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance import PROJECT_ROOT

PACKAGE_DIR = PROJECT_ROOT / "conformance"

#: Bottom to top. A package may import its own modules and those of packages in lower layers; packages of
#: one layer do not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),  # polling, deadlines, processes, progress, scrubbing, YAML, pinned versions, Allure primitives
    ("images",),  # image references, the image list, mirrors, registry digests, loading into kind
    ("settings",),  # the run's validated options and who ships the Istio under test
    ("spec", "kube", "platform"),  # the check catalogue; the Kubernetes API; kind and the pinned binaries
    ("istio", "probe"),  # installing and reading Istio; curl probes and access logs
    ("engine",),  # the runtime seam, the action log, cross-reference rules, the routing oracle
    ("world",),  # the external world, its PKI, the scenarios' client workloads
    ("runtimes", "checks", "report"),  # live and plan runtimes; the check API; the conformance report
    ("harness",),  # the pytest plugin: options, fixtures, result collection, failure handling
)
LAYER_OF = {package: index for index, layer in enumerate(LAYERS) for package in layer}
MAX_MODULE_LINES = 430


def _modules() -> Iterator[Path]:
    yield from sorted(PACKAGE_DIR.rglob("*.py"))


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "conformance" else None


def _module_name(path: Path) -> str:
    relative = path.relative_to(PROJECT_ROOT).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ``conformance`` module this file imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "conformance" or node.module.startswith("conformance."):
                base = node.module
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    found.add(candidate if _is_module(candidate) else base)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; the harness imports absolutely")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("conformance."))
    return found


def _is_module(name: str) -> bool:
    path = PROJECT_ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_every_module_belongs_to_a_layered_package() -> None:
    unplaced = [
        _module_name(path)
        for path in _modules()
        if _module_name(path) != "conformance" and _package_of(_module_name(path) + ".x") not in LAYER_OF
    ]
    assert unplaced == []
    assert sorted(p.name for p in PACKAGE_DIR.iterdir() if p.is_dir() and (p / "__init__.py").exists()) == sorted(
        LAYER_OF
    )


def test_no_package_imports_upwards_or_sideways() -> None:
    violations = []
    for path in _modules():
        importer = _module_name(path)
        own = _package_of(importer + ".x") if importer != "conformance" else None
        for imported in _imports(path):
            target = _package_of(imported)
            if own is None or target is None or target == own:
                continue
            if LAYER_OF[target] >= LAYER_OF[own]:
                violations.append(f"{importer} ({own}) imports {imported} ({target})")
    assert violations == []


def test_no_import_cycle_between_modules() -> None:
    graph = {_module_name(path): _imports(path) - {"conformance"} for path in _modules()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == 1:
                cycles.append([*trail[trail.index(imported) :], imported] if imported in trail else [imported])
            elif imported not in state:
                visit(imported, [*trail, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def _module_constants() -> list[tuple[str, str, object]]:
    """(module, name, value) of every module-level ``NAME = <literal>`` in the library."""
    found = []
    for path in _modules():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target, value = None, None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign):
                target, value = node.target, node.value
            if not isinstance(target, ast.Name) or value is None:
                continue
            if not target.id.lstrip("_").isupper():
                continue
            try:
                literal = ast.literal_eval(value)
            except ValueError:
                continue
            found.append((_module_name(path), target.id.lstrip("_"), literal))
    return found


#: Constants whose texts are equal by coincidence of naming, not one value written twice.
SAME_TEXT_OTHER_MEANING = {
    ("conformance.kube.api", "FIELD_MANAGER"),  # server-side apply's field manager: the product's name
    ("conformance.world.pki", "ORGANIZATION"),  # the test CA's subject organisation: the product's name too
    # the reserved gateway name `mesh` of a VirtualService, not a ConfigMap key
    ("conformance.engine.istio_config", "MESH_GATEWAY"),
    # meshConfig.rootNamespace's default, not where the harness installs
    ("conformance.engine.istio_config", "DEFAULT_ROOT_NAMESPACE"),
    # the Python package of the scenario modules, not the folder of their manifests under manifests/
    ("conformance.harness.scenario_modules", "SCENARIO_PACKAGE"),
}


def test_each_constant_is_defined_in_one_module() -> None:
    modules_by_name: dict[str, set[str]] = defaultdict(set)
    modules_by_text: dict[str, set[str]] = defaultdict(set)
    for module, name, value in _module_constants():
        modules_by_name[name].add(module)
        if isinstance(value, str) and len(value) > 3 and (module, name) not in SAME_TEXT_OTHER_MEANING:
            modules_by_text[value].add(module)
    assert {name: sorted(m) for name, m in modules_by_name.items() if len(m) > 1} == {}
    assert {text: sorted(m) for text, m in modules_by_text.items() if len(m) > 1} == {}


def test_images_are_loaded_into_kind_in_one_place() -> None:
    loaders = [_module_name(path) for path in _modules() if '"docker-image"' in path.read_text(encoding="utf-8")]
    assert loaders == ["conformance.images.kind_loading"]


@pytest.mark.parametrize("path", list(_modules()), ids=lambda p: _module_name(p))
def test_module_stays_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_module_name(path)}: {lines} lines; split it by concern"


#: Where the run's kind may be read from the settings: the one place it is chosen. Everything else asks the kind
#: (conformance.harness.run_kinds); the report states what the kind says of itself (``RunKindFacts``).
PLAN_READERS: set[tuple[str, str | None]] = {
    ("conformance.harness.plugin", "run_kind_for"),
}


def _plan_reads(source: str) -> set[str | None]:
    """The functions of ``source`` that read ``settings.plan`` (None: at module level)."""
    found: set[str | None] = set()

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Attribute) and child.attr == "plan":
                owner = child.value
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if name == "settings":
                    found.add(function)
            visit(child, function)

    visit(ast.parse(source), None)
    return found


def test_plan_and_live_part_in_one_place() -> None:
    offenders = []
    for path in _modules():
        module = _module_name(path)
        for function in _plan_reads(path.read_text(encoding="utf-8")):
            if (module, function) not in PLAN_READERS and (module, None) not in PLAN_READERS:
                offenders.append(f"{module}.{function or '<module>'}")
    assert not offenders, f"read settings.plan; ask the run's kind instead: {offenders}"


def test_the_plan_rule_sees_a_planted_branch() -> None:
    planted = (
        "def mesh(settings):\n    if settings.plan:\n        return 1\n\ndef other(self):\n    self.settings.plan\n"
    )
    assert _plan_reads(planted) == {"mesh", "other"}
    assert _plan_reads("def f(options):\n    return options.plan\n") == set()


def test_the_rules_see_a_planted_cycle_and_up_arrow() -> None:
    """The rules above must be able to fail: two core modules importing each other (one only for type
    checking, one inside a function) and one of them importing the harness are all caught."""
    first, second = PACKAGE_DIR / "core" / "zz_planted_a.py", PACKAGE_DIR / "core" / "zz_planted_b.py"
    first.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import conformance.core.zz_planted_b\n"
        "    import conformance.harness.plugin\n"
    )
    second.write_text("def late() -> None:\n    from conformance.core import zz_planted_a\n")
    try:
        with pytest.raises(AssertionError, match=r"zz_planted_a \(core\) imports conformance\.harness\.plugin"):
            test_no_package_imports_upwards_or_sideways()
        with pytest.raises(AssertionError, match="zz_planted_b"):
            test_no_import_cycle_between_modules()
    finally:
        first.unlink()
        second.unlink()


def test_the_check_api_example_names_manifests_that_exist_and_a_real_check() -> None:
    """The example in ``conformance.checks`` is EGW-04 as ``scenarios/test_egw.py`` has it."""
    import conformance.checks

    example = conformance.checks.__doc__ or ""
    sources = re.findall(r'"([\w/-]+\.yaml)"', example)
    assert sources
    for source in sources:
        assert (PROJECT_ROOT / "manifests" / "scenarios" / source).is_file(), source
    egw = (PROJECT_ROOT / "scenarios" / "test_egw.py").read_text(encoding="utf-8")
    declaration = re.search(r'@sidecar_check\(\n\s+"EGW-04",\n\s+"([^"]+)"', example)
    assert declaration is not None, "the example declares EGW-04"
    assert "def test_gateway_and_two_hop_routes_carry_the_request(" in egw and declaration.group(1) in egw
