"""The catalogue is the specification's ID tables, one record and one test per check."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conformance import PROJECT_ROOT
from conformance.spec.catalogue import CATALOGUE, CatalogueError, check, lookup
from conformance.spec.model import PROFILE_MARKERS, Profile, Tier

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


def _tests_by_check() -> dict[str, list[str]]:
    """Check ID -> test functions carrying ``@check(ID)``, read from the scenario modules' source."""
    found: dict[str, list[str]] = {}
    for module in sorted((PROJECT_ROOT / "scenarios").glob("test_*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and getattr(decorator.func, "id", None) == "check"
                    and decorator.args
                    and isinstance(decorator.args[0], ast.Constant)
                ):
                    found.setdefault(str(decorator.args[0].value), []).append(f"{module.name}::{node.name}")
    return found


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
        check("AMB-X4")


def test_records_are_complete() -> None:
    for record in CATALOGUE.values():
        assert record.title and record.expected and record.documented, record.id
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
    @check("MTLS-04b")
    def probe() -> None: ...

    marks = {(m.name, m.args) for m in getattr(probe, "pytestmark", [])}
    assert ("egress", ()) in marks
    assert (PROFILE_MARKERS[Profile.EGRESS_SIDECAR], ()) in marks
    assert ("sidecar", ()) in marks and ("ambient", ()) not in marks
    assert ("check", ("MTLS-04b",)) in marks


def test_unknown_id_is_refused_with_the_catalogue_named() -> None:
    with pytest.raises(CatalogueError, match=r"conformance/spec/records_\*\.py"):
        lookup("EGW-99")


def test_every_scenario_module_is_a_family_of_the_catalogue() -> None:
    families = {c.family for c in CATALOGUE.values()}
    for module in (PROJECT_ROOT / "scenarios").glob("test_*.py"):
        text = Path(module).read_text(encoding="utf-8")
        assert '"""' in text.split("\n", 1)[0], f"{module.name} starts with a docstring naming its seed"
    assert {"EGW", "NSD", "MTLS", "ETP", "AMB", "AMB-X", "XW"} == families
