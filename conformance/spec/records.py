"""The records of the catalogue: one per check of the scenario specification, implemented or not, with
what its seed documents, what upstream Istio does, and every deviation and adaptation.

Each family's records live in a module of their own (``records_egw`` ... ``records_xw``); this module puts
them together in the catalogue's order.
"""

from __future__ import annotations

from conformance.spec.model import Check
from conformance.spec.records_amb import AMB_RECORDS, WAYPOINT_TEST_CA_ADAPTATION
from conformance.spec.records_egw import EGW_RECORDS
from conformance.spec.records_etp import ETP_GATEWAY_SELECTOR_ADAPTATION, ETP_RECORDS
from conformance.spec.records_mtls import MTLS_RECORDS
from conformance.spec.records_nsd import NSD_RECORDS
from conformance.spec.records_xw import XW_RECORDS

# Scenarios may import from this module but not from the family modules (tests/test_planning.py), so the
# adaptations their steps declare are offered here too.
__all__ = ["ETP_GATEWAY_SELECTOR_ADAPTATION", "RECORDS", "WAYPOINT_TEST_CA_ADAPTATION"]

RECORDS: tuple[Check, ...] = (
    *EGW_RECORDS,
    *NSD_RECORDS,
    *MTLS_RECORDS,
    *ETP_RECORDS,
    *AMB_RECORDS,
    *XW_RECORDS,
)
