"""The library's shape: each constant defined in one place, each job done by one piece of code."""

from __future__ import annotations

import ast
from collections import defaultdict

from conformance import PROJECT_ROOT

LIBRARY = sorted((PROJECT_ROOT / "conformance").glob("*.py"))


def _module_constants() -> list[tuple[str, str, object]]:
    """(module, name, value) of every module-level ``NAME = <literal>`` in the library."""
    found = []
    for path in LIBRARY:
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
            found.append((path.stem, target.id.lstrip("_"), literal))
    return found


#: Constants whose texts are equal by coincidence of naming, not one value written twice.
SAME_TEXT_OTHER_MEANING = {
    ("kube", "FIELD_MANAGER"),  # server-side apply's field manager: the product's name
    ("pki", "ORGANIZATION"),  # the test CA's subject organisation: the product's name too
    ("crossref", "MESH_GATEWAY"),  # the reserved gateway name `mesh` of a VirtualService, not a ConfigMap key
    ("crossref", "DEFAULT_ROOT_NAMESPACE"),  # meshConfig.rootNamespace's default, not where the harness installs
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
    loaders = [path.stem for path in LIBRARY if '"docker-image"' in path.read_text(encoding="utf-8")]
    assert loaders == ["kind_loading"]
