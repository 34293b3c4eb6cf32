"""The mutation suite (tests/mutants.py): every mutant of tests/data/mutants.json dies where its record says."""

from __future__ import annotations

import dataclasses

import pytest

from conformance.spec.catalogue import CATALOGUE
from conformance.spec.model import Profile
from tests import mutants
from tests.mutants import LIVE, NIGHTLY_ONLY, OFFLINE, Mutant, MutantError


def control_mutant(file: str, old: str, new: str) -> Mutant:
    """A change of EGW-04's configuration made to test the suite itself."""
    return Mutant(id=f"control/{file}", check="EGW-04", file=file, old=old, new=new, why="control", killed_by=OFFLINE)


def test_mutant_data_fits_the_checkout() -> None:
    """Each mutant's text occurs exactly once in its file, its check exists, its killer is stated."""
    loaded = mutants.load()
    assert len(loaded) >= len(CATALOGUE) - 1


def test_every_implemented_check_of_a_mesh_profile_has_a_mutant() -> None:
    """The external world's own checks have no documented configuration to get wrong; some have mutants."""
    covered = {m.check for m in mutants.load()}
    implemented = {c.id for c in CATALOGUE.values() if not c.not_applicable and c.profile is not Profile.EXTERNAL_WORLD}
    assert implemented - covered == set()


def test_offline_blind_mutants_say_what_kills_them() -> None:
    for mutant in mutants.load():
        if mutant.killed_by == LIVE:
            assert mutant.live_run and "PENDING" not in mutant.live_run, mutant.id
        if mutant.killed_by == NIGHTLY_ONLY:
            assert CATALOGUE[mutant.check].profile is Profile.EGRESS_AMBIENT, (
                f"{mutant.id}: only ambient mutants may wait for the nightly run"
            )


def test_a_stale_mutant_is_refused() -> None:
    real = mutants.load()[0]
    stale = dataclasses.replace(real, old="text that is in no manifest")
    assert any("occurs 0 times" in problem for problem in mutants.problems_of(stale))


def test_a_harmless_change_survives() -> None:
    """The suite can tell: a comment changed in a check's manifest kills nothing."""
    harmless = control_mutant(
        "manifests/scenarios/egw/gateway.yaml",
        "apiVersion: networking.istio.io/v1beta1\nkind: Gateway\n",
        "# a harmless comment\napiVersion: networking.istio.io/v1beta1\nkind: Gateway\n",
    )
    assert mutants.problems_of(harmless) == []
    verdict = mutants.judge(harmless)
    assert not verdict.killed, verdict.line()


def test_every_mutant_dies_where_its_record_says(capsys: pytest.CaptureFixture[str]) -> None:
    verdicts = mutants.judge_all(mutants.load())
    with capsys.disabled():
        print("\n" + mutants.kill_table(verdicts))
    survivors = [v.line() for v in verdicts if not v.killed and v.mutant.killed_by == OFFLINE]
    assert not survivors, "mutants no offline layer killed:\n" + "\n".join(survivors)
    stale = [v.line() for v in verdicts if v.killed and v.mutant.killed_by != OFFLINE]
    assert not stale, "mutants recorded as live or nightly-only that an offline layer now kills:\n" + "\n".join(stale)


def test_a_mutant_without_a_verdict_is_an_error_not_a_kill() -> None:
    # The declaration now claims another check's ID: the catalogue refuses the run, EGW-04 has no entry.
    broken = control_mutant("scenarios/test_egw.py", '    "EGW-04",\n    "A Gateway', '    "EGW-03",\n    "A Gateway')
    with pytest.raises(MutantError, match="no report entry"):
        mutants.judge(broken)
