"""The catalogue is the specification's ID tables, one record and one test per check."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from conformance import PROJECT_ROOT
from conformance.harness.scenario_modules import load_scenarios
from conformance.spec.catalogue import CATALOGUE, Catalogue, CatalogueError, lookup, sidecar_check, stand_in
from conformance.spec.model import PROFILE_MARKERS, Check, Profile, Seed, Tier
from conformance.spec.record_texts import EGW_STEP1

SPEC_COPY = PROJECT_ROOT / "tests" / "data" / "spec" / "scenarios.md"
#: The specification's original, when the checkout sits beside it.
SPEC_ORIGINAL = PROJECT_ROOT.parent / "shared" / "spec" / "scenarios.md"
_ID = re.compile(r"^\| ?([A-Z]+-[0-9A-Z]+[a-z]?) ?\|", re.M)
_BULLET_ID = re.compile(r"^- (AMB-X\d) ", re.M)


def spec_ids(text: str) -> list[str]:
    """Check IDs of the specification: first column of the ID tables, and the AMB-X list."""
    return _ID.findall(text) + _BULLET_ID.findall(text)


def test_copy_of_the_specification_is_current() -> None:
    if not SPEC_ORIGINAL.is_file():
        pytest.skip(f"the specification's original is not beside the checkout ({SPEC_ORIGINAL})")
    assert SPEC_COPY.read_text(encoding="utf-8") == SPEC_ORIGINAL.read_text(encoding="utf-8")


def test_every_specified_check_has_exactly_one_record() -> None:
    ids = spec_ids(SPEC_COPY.read_text(encoding="utf-8"))
    assert len(ids) == len(set(ids)), "an ID appears twice in the specification's tables"
    assert len(ids) == 32
    harness_only = {c.id for c in CATALOGUE.values() if c.profile is Profile.EXTERNAL_WORLD}
    beyond = {c.id for c in CATALOGUE.values() if c.beyond_specification}
    assert set(CATALOGUE) - harness_only - beyond == set(ids)
    assert not beyond & set(ids), "a check the specification lists is marked as beyond it"


def test_checks_beyond_the_specification_cite_their_seed_claim() -> None:
    beyond = [c for c in CATALOGUE.values() if c.beyond_specification]
    assert sorted(c.id for c in beyond) == ["AMB-05", "EGW-05", "MTLS-06", "NSD-08"]
    for record in beyond:
        claim = record.beyond_specification or ""
        assert record.seed is not None and claim.startswith(f"seed {record.seed_label}")


def test_specification_corrections_name_the_istio_source() -> None:
    corrected = {c.id: c.specification_correction for c in CATALOGUE.values() if c.specification_correction}
    assert set(corrected) == {"EGW-02"}
    assert "pilot/pkg/networking/core/httproute.go" in corrected["EGW-02"]
    assert "BlackHoleCluster" in corrected["EGW-02"]


def test_spec_parser_sees_table_rows_only() -> None:
    sample = "| ID | step |\n|---|---|\n| EGW-01 | x |\n| MTLS-04b | y |\n- AMB-X4 REGISTRY_ONLY\n| not | an id |\n"
    assert spec_ids(sample) == ["EGW-01", "MTLS-04b", "AMB-X4"]


DECLARATIONS = ("sidecar_check", "ambient_check", "external_check")


def _declaration_id(node: ast.expr) -> str | None:
    if (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", None) in DECLARATIONS
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
        return str(node.args[0].value)
    return None


def _tests_by_check() -> dict[str, list[str]]:
    """Check ID -> test functions its declaration decorates, read from the scenario modules' source."""
    found: dict[str, list[str]] = {}
    for module in sorted((PROJECT_ROOT / "scenarios").glob("test_*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                for decorator in node.decorator_list:
                    check_id = _declaration_id(decorator)
                    if check_id is not None:
                        found.setdefault(check_id, []).append(f"{module.name}::{node.name}")
    return found


def _declarations_without_test() -> dict[str, str]:
    """Check ID -> scenario module, for the declarations that stand alone (a check with no test)."""
    found = {}
    for module in sorted((PROJECT_ROOT / "scenarios").glob("test_*.py")):
        for node in ast.parse(module.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Expr) and (check_id := _declaration_id(node.value)) is not None:
                found[check_id] = module.name
    return found


def test_every_record_is_declared_where_its_test_is() -> None:
    """One place per check: each record of the catalogue is the decorator of its test, or a declaration of
    its own in the family's scenario module when it has no test (not applicable)."""
    tests, alone = _tests_by_check(), _declarations_without_test()
    assert not set(tests) & set(alone)
    assert set(tests) | set(alone) == set(CATALOGUE)
    assert {check_id for check_id in alone} == {c.id for c in CATALOGUE.values() if c.not_applicable}


def test_no_test_lacks_a_record_and_no_check_has_two_tests() -> None:
    tests = _tests_by_check()
    assert set(tests) <= set(CATALOGUE), f"tests for unknown IDs: {sorted(set(tests) - set(CATALOGUE))}"
    doubled = {cid: names for cid, names in tests.items() if len(names) > 1}
    assert not doubled


def test_not_applicable_checks_have_a_reason_and_no_test() -> None:
    tests = _tests_by_check()
    not_applicable = [c for c in CATALOGUE.values() if c.not_applicable]
    assert [c.id for c in not_applicable] == ["AMB-X4"]
    assert all(c.id not in tests for c in not_applicable)
    with pytest.raises(CatalogueError, match="does not apply"):
        stand_in("AMB-X4")(lambda: None)


def test_records_are_complete() -> None:
    for record in CATALOGUE.values():
        assert record.title and record.documented, record.id
        if record.profile is not Profile.EXTERNAL_WORLD:
            assert record.modes, record.id
        if record.id.startswith("AMB-X"):
            assert record.tier is Tier.EXTENDED and record.seed is None
        elif record.profile is not Profile.EXTERNAL_WORLD:
            assert record.seed is not None, record.id
            seed = PROJECT_ROOT.parent / "shared" / "seeds" / record.seed.file
            if seed.is_file():
                assert record.seed.section in seed.read_text(encoding="utf-8"), (record.id, record.seed.section)


def test_seed_sections_name_real_headings_of_each_seed_file() -> None:
    seeds = {c.seed.file for c in CATALOGUE.values() if c.seed}
    assert seeds == {
        "000_2c76676392fa61cf.txt",
        "001_2a324748033e196a.txt",
        "002_cc7ee192d894de70.txt",
        "003_7968a64320b06b64.txt",
        "004_d84b0b36a19207dd.txt",
    }


def test_check_decorator_applies_markers_from_the_record() -> None:
    @stand_in("MTLS-04b")
    def probe() -> None: ...

    marks = {(m.name, m.args) for m in getattr(probe, "pytestmark", [])}
    assert ("egress", ()) in marks
    assert (PROFILE_MARKERS[Profile.EGRESS_SIDECAR], ()) in marks
    assert ("sidecar", ()) in marks and ("ambient", ()) not in marks
    assert ("check", ("MTLS-04b",)) in marks


def test_unknown_id_is_refused_with_the_catalogue_named() -> None:
    with pytest.raises(CatalogueError, match=r"declared in .*scenarios"):
        lookup("EGW-99")


def test_every_scenario_module_is_a_family_of_the_catalogue() -> None:
    families = {c.family for c in CATALOGUE.values()}
    for module in (PROJECT_ROOT / "scenarios").glob("test_*.py"):
        text = Path(module).read_text(encoding="utf-8")
        assert '"""' in text.split("\n", 1)[0], f"{module.name} starts with a docstring naming its seed"
    assert {"EGW", "NSD", "MTLS", "ETP", "AMB", "AMB-X", "XW"} == families


def test_the_catalogue_is_not_read_before_the_scenarios_declared_their_checks() -> None:
    catalogue = Catalogue()
    with pytest.raises(CatalogueError, match="load_scenarios"):
        list(catalogue)
    catalogue.loaded("nowhere")
    assert len(catalogue) == 0


def test_a_check_declared_twice_differently_is_refused_and_the_same_record_again_is_not() -> None:
    catalogue = Catalogue()
    record = Check("EGW-01", "a title", Profile.EGRESS_SIDECAR, "EGW", (), Seed("s.txt", "a"), "301")
    catalogue.declare(record)
    catalogue.declare(record)  # a scenario module imported again declares the same record
    with pytest.raises(CatalogueError, match="declared twice"):
        catalogue.declare(Check("EGW-01", "another title", Profile.EGRESS_SIDECAR, "EGW", (), None, "301"))
    with pytest.raises(CatalogueError, match="family 'FOO'"):
        catalogue.declare(Check("FOO-01", "t", Profile.EGRESS_SIDECAR, "FOO", (), None, "x"))


def test_declaring_a_known_id_with_another_record_is_refused() -> None:
    with pytest.raises(CatalogueError, match="EGW-01 is declared twice"):
        sidecar_check("EGW-01", "A title no scenario has", EGW_STEP1, "301")


def test_the_catalogue_keeps_the_specification_s_family_order() -> None:
    order = [c.family for c in CATALOGUE.values()]
    assert order == sorted(order, key=["EGW", "NSD", "MTLS", "ETP", "AMB", "AMB-X", "XW"].index)
    assert list(CATALOGUE)[:2] == ["EGW-01", "EGW-02"] and list(CATALOGUE)[-1] == "XW-06"


def test_the_catalogue_knows_which_checks_have_a_test() -> None:
    assert all(CATALOGUE.has_test(c.id) for c in CATALOGUE.values() if not c.not_applicable)
    assert not CATALOGUE.has_test("AMB-X4")


def test_loading_refuses_a_checkout_without_scenario_modules(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="no scenario modules"):
        load_scenarios(tmp_path)


def test_loading_refuses_scenario_modules_imported_from_another_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "test_egw.py").write_text("", encoding="utf-8")
    # scenarios.test_egw is this checkout's, already imported: the other checkout's file is not what ran.
    with pytest.raises(CatalogueError, match=r"was imported from .*, not from"):
        load_scenarios(tmp_path)
