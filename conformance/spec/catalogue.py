"""The check catalogue: one record per conformance check, the single source of IDs, titles and outcomes.

Every check of the scenario specification has a record here, implemented or not; a check's test links to
its record with ``@check("EGW-04")`` and takes from it its pytest markers (``egress``, profile, data-plane
mode, ``check(ID)``), its ``-k`` keyword, its Allure labels and its report entry. The documented outcome
(what the seed says), the expected upstream outcome, and any documentation deviation or adaptation are
declared here — never re-typed inside a test body.

A record without a test is reported as *not implemented*: a profile with such a check can never report
``success``. A record with ``not_applicable`` set is reported as not applicable, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import pytest

from conformance.spec.model import PROFILE_MARKERS, Check, F, Profile
from conformance.spec.records import RECORDS

CATALOGUE: Mapping[str, Check] = MappingProxyType({c.id: c for c in RECORDS})

if len(CATALOGUE) != len(RECORDS):  # pragma: no cover - guarded by tests/test_catalogue.py too
    raise RuntimeError("duplicate check ID in the catalogue")


class CatalogueError(LookupError):
    pass


def lookup(check_id: str) -> Check:
    try:
        return CATALOGUE[check_id]
    except KeyError:
        raise CatalogueError(f"{check_id!r} is not a check of the catalogue (conformance/spec/records_*.py)") from None


def checks(profile: Profile | None = None) -> list[Check]:
    return [c for c in RECORDS if profile is None or c.profile is profile]


def check(check_id: str) -> Callable[[F], F]:
    """Link a test to its catalogue record: applies the record's markers.

    ``egress`` (it is an end-to-end check), the profile marker, a marker per data-plane mode, and
    ``check(ID)`` — from which the plugin adds the ``-k`` keyword, the Allure labels and the report entry.
    """
    record = lookup(check_id)
    if record.not_applicable:
        raise CatalogueError(f"{check_id} does not apply ({record.not_applicable}); it has no test")
    marks: list[pytest.MarkDecorator] = [
        pytest.mark.egress,
        getattr(pytest.mark, PROFILE_MARKERS[record.profile]),
        *(getattr(pytest.mark, mode.value) for mode in record.modes),
        pytest.mark.check(check_id),
    ]

    def decorate(function: F) -> F:
        for mark in reversed(marks):
            function = mark(function)
        return function

    return decorate
