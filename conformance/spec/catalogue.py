"""The check catalogue: one record per conformance check, declared beside the check's test.

A scenario module declares each check where its test is, as a Gateway API conformance test carries its short
name and description::

    @sidecar_check("EGW-01", "With ALLOW_ANY a sidecar reaches an unregistered external host", EGW_STEP1, "301")
    def test_allow_any_reaches_an_unregistered_host(step: Step, sleep: Client) -> None: ...

The declaration registers the record (ID, title, seed section, what the seed documents, any deviation or
adaptation) and gives the test its pytest markers (``egress``, profile, data-plane mode, ``check(ID)``), from
which the plugin adds the ``-k`` keyword, the Allure labels and the report entry. What upstream Istio must
show is what the test asserts: the report renders it from the check's recorded expectations.

The harness loads every scenario module before it reads the catalogue (``conformance.harness.scenario_modules``),
so the report, the cross-reference rules and the oracle see every record whichever checks a run selects. A
record with ``not_applicable`` set has no test and is reported as not applicable, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from conformance.settings.options import MeshMode
from conformance.spec.model import PROFILE_MARKERS, Check, F, Profile, Seed, family_of

#: The catalogue's order: the families as the specification lists them, then the harness's own.
FAMILIES = ("EGW", "NSD", "MTLS", "ETP", "AMB", "AMB-X", "XW")


class CatalogueError(LookupError):
    pass


class Catalogue(Mapping[str, Check]):
    """The records, by ID, in the catalogue's order; read only once every scenario module declared its own."""

    def __init__(self) -> None:
        self._records: dict[str, Check] = {}
        self._tested: set[str] = set()
        self._loaded_from: str | None = None

    def declare(self, record: Check) -> None:
        if record.family not in FAMILIES:
            raise CatalogueError(f"{record.id}: family {record.family!r} is not one of {', '.join(FAMILIES)}")
        known = self._records.get(record.id)
        # A scenario module imported a second time (pytest after the loader) declares the same record again.
        if known is not None and known != record:
            raise CatalogueError(f"{record.id} is declared twice, with different records")
        self._records[record.id] = record

    def mark_tested(self, check_id: str) -> None:
        """The check's declaration decorates a test function."""
        self._tested.add(check_id)

    def has_test(self, check_id: str) -> bool:
        """Whether some module declared a test for the check (collected by this run or not)."""
        return check_id in self._tested

    def loaded(self, source: str) -> None:
        """Every scenario module (in ``source``) has declared its records: the catalogue may be read."""
        self._loaded_from = source

    @property
    def source(self) -> str | None:
        return self._loaded_from

    def _complete(self) -> dict[str, Check]:
        if self._loaded_from is None:
            raise CatalogueError(
                "the catalogue is read before the scenario modules declared their checks: load them first "
                "(conformance.harness.scenario_modules.load_scenarios; the egress-conformance plugin does)"
            )
        return self._records

    def __getitem__(self, check_id: str) -> Check:
        return self._complete()[check_id]

    def __iter__(self) -> Iterator[str]:
        records = self._complete()
        return iter(sorted(records, key=lambda i: (FAMILIES.index(records[i].family), i)))

    def __len__(self) -> int:
        return len(self._complete())


CATALOGUE = Catalogue()


def lookup(check_id: str) -> Check:
    try:
        return CATALOGUE[check_id]
    except KeyError:
        raise CatalogueError(f"{check_id!r} is not a check of the catalogue (declared in {CATALOGUE.source})") from None


def checks(profile: Profile | None = None) -> list[Check]:
    return [c for c in CATALOGUE.values() if profile is None or c.profile is profile]


def check_marks(record: Check) -> list[pytest.MarkDecorator]:
    """``egress`` (it is an end-to-end check), the profile marker, a marker per data-plane mode, ``check(ID)``."""
    return [
        pytest.mark.egress,
        getattr(pytest.mark, PROFILE_MARKERS[record.profile]),
        *(getattr(pytest.mark, mode.value) for mode in record.modes),
        pytest.mark.check(record.id),
    ]


class CheckDeclaration:
    """A declared record; applied to a function, it makes that function the check's test."""

    def __init__(self, record: Check) -> None:
        self.record = record
        CATALOGUE.declare(record)

    def __call__(self, function: F) -> F:
        if self.record.not_applicable:
            raise CatalogueError(f"{self.record.id} does not apply ({self.record.not_applicable}); it has no test")
        for mark in reversed(check_marks(self.record)):
            function = mark(function)
        CATALOGUE.mark_tested(self.record.id)
        return function


def _declared(
    check_id: str,
    title: str,
    profile: Profile,
    modes: tuple[MeshMode, ...],
    seed: Seed | None,
    documented: str,
    **extra: Any,
) -> CheckDeclaration:
    record = Check(check_id, title, profile, family_of(check_id), modes, seed, documented, **extra)
    return CheckDeclaration(record)


def sidecar_check(check_id: str, title: str, seed: Seed, documented: str, **extra: Any) -> CheckDeclaration:
    """A check of profile EGRESS-SIDECAR, on the sidecar data plane."""
    return _declared(check_id, title, Profile.EGRESS_SIDECAR, (MeshMode.SIDECAR,), seed, documented, **extra)


def ambient_check(check_id: str, title: str, seed: Seed | None, documented: str, **extra: Any) -> CheckDeclaration:
    """A check of profile EGRESS-AMBIENT, on the ambient data plane."""
    return _declared(check_id, title, Profile.EGRESS_AMBIENT, (MeshMode.AMBIENT,), seed, documented, **extra)


def external_check(
    check_id: str, title: str, seed: Seed | None, documented: str, *, through_sidecars: bool = False
) -> CheckDeclaration:
    """A check of the in-cluster external world itself: it does not depend on the mesh, unless it checks what
    the mesh's sidecars see of it (``through_sidecars``)."""
    modes = (MeshMode.SIDECAR,) if through_sidecars else ()
    return _declared(check_id, title, Profile.EXTERNAL_WORLD, modes, seed, documented)


def stand_in(check_id: str) -> CheckDeclaration:
    """Run another body under a declared check's record: for the harness's own tests, which replay a check
    against a scripted runtime. A scenario declares its checks instead (tests/test_planning.py holds it to it)."""
    return CheckDeclaration(lookup(check_id))


__all__ = [
    "CATALOGUE",
    "FAMILIES",
    "Catalogue",
    "CatalogueError",
    "CheckDeclaration",
    "ambient_check",
    "check_marks",
    "checks",
    "external_check",
    "lookup",
    "sidecar_check",
    "stand_in",
]
