"""One check's entry in the conformance report: its result, probes, adaptations and evidence, and the entries
of the catalogue checks a run did not select."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.engine.check_run import CheckRun
from conformance.spec.catalogue import CATALOGUE
from conformance.spec.model import Check, Tier
from conformance.spec.record_texts import GATEWAY_MTLS_ADAPTATION, GATEWAY_PLAINTEXT_ADAPTATION


class CheckResult(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    #: Walked by a plan run: nothing was carried out.
    PLANNED = "planned"
    #: Selected, but the run stopped before it.
    NOT_RUN = "not-run"
    #: Implemented, but left out by -k / -m.
    NOT_SELECTED = "not-selected"
    #: In the catalogue, without a test.
    NOT_IMPLEMENTED = "not-implemented"
    #: Does not apply to upstream Istio (the catalogue says why).
    NOT_APPLICABLE = "not-applicable"


@dataclass
class CheckRecord:
    check_id: str
    nodeid: str | None
    profile: str
    mode: str | None
    result: CheckResult
    reason: str | None = None
    duration: float = 0.0
    #: Adaptations the harness applied while the check ran: {reason, manifests}.
    adaptations: list[dict[str, Any]] = field(default_factory=list)
    #: Outcomes the catalogue asks to record as observed (label -> outcome).
    observed: dict[str, str] = field(default_factory=dict)
    #: What the check expected of upstream Istio, as its run recorded it (empty when its body did not run).
    expected: list[str] = field(default_factory=list)
    #: The documented requests, what they were expected to and did end in, and when they converged.
    probes: list[dict[str, Any]] = field(default_factory=list)
    #: Evidence files of a failed check (``EvidenceFile.record()``) and what could not be collected.
    evidence: list[dict[str, Any]] = field(default_factory=list)
    evidence_errors: list[str] = field(default_factory=list)
    #: Further facts the check's run recorded for its entry, by key (e.g. ``egressTrafficPolicy``).
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def check(self) -> Check | None:
        return CATALOGUE.get(self.check_id)

    @property
    def core(self) -> bool:
        check = self.check
        return check is None or check.tier is Tier.CORE

    @property
    def convergence_seconds(self) -> float | None:
        """The check's time to converge: its slowest positive probe, from the last configuration change
        before it to the first of its N consecutive matches."""
        values = [p["convergedAfterSeconds"] for p in self.probes if p.get("convergedAfterSeconds") is not None]
        return round(max(values), 3) if values else None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.check_id}
        check = self.check
        if check is not None:
            data["title"] = check.title
            data["tier"] = check.tier.value
            data["family"] = check.family
            if check.seed is not None:
                data["seed"] = {"file": check.seed.file, "section": check.seed.section}
        if self.nodeid:
            data["test"] = self.nodeid
        data["result"] = self.result.value
        if self.mode:
            data["mode"] = self.mode
        if self.reason:
            data["reason"] = self.reason
        if check is not None and check.deviation:
            data["deviation"] = deviation_entry(check, self.expected)
        if check is not None and check.specification_correction:
            data["specificationCorrection"] = check.specification_correction
        if check is not None and check.beyond_specification:
            data["beyondSpecification"] = check.beyond_specification
        if self.adaptations:
            data["adaptations"] = list(self.adaptations)
        if self.observed:
            data["observed"] = dict(self.observed)
        if self.probes:
            data["probes"] = list(self.probes)
        data["convergenceSeconds"] = self.convergence_seconds
        data.update(self.details)
        if self.evidence or self.evidence_errors:
            data["evidence"] = {"files": list(self.evidence), "errors": list(self.evidence_errors)}
        data["durationSeconds"] = round(self.duration, 3)
        return data


def deviation_entry(check: Check, expected: Sequence[str]) -> dict[str, Any]:
    """A documentation deviation: what the seed says, why upstream differs, and — when the check's body ran —
    what the check expected instead, in its recorded expectations' words."""
    entry: dict[str, Any] = {"documented": check.documented}
    if expected:
        entry["expected"] = list(expected)
    entry["reason"] = check.deviation
    return entry


def probe_records(run: CheckRun) -> list[dict[str, Any]]:
    """Report entries of a check run's probes: each documented
    request, its expectation, and — for those that finished — the outcome, attempts and convergence."""
    observations = {o.probe_id: o for o in run.observations}
    records = []
    for action in run.actions.actions:
        if action.type != "probe":
            continue
        fields = action.fields
        record: dict[str, Any] = {
            "id": fields["probe"],
            "client": fields["client"],
            "command": fields["request"]["display"],
            "until": fields["until"],
            "expected": fields["expect"]["outcome"],
        }
        if fields.get("control"):
            record["control"] = True
        observation = observations.get(fields["probe"])
        if observation is not None and observation.result is not None:
            record["outcome"] = observation.outcome_text
            record["attempts"] = observation.attempts
            converged = observation.converged_after
            record["convergedAfterSeconds"] = round(converged, 3) if converged is not None else None
        records.append(record)
    return records


def run_adaptations(run: CheckRun, ran: bool) -> list[dict[str, Any]]:
    """The adaptations of a check's report entry: those its run recorded (with their manifests), then, when
    it ran, the catalogue's inherent ones the run did not record itself (each adaptation listed once)."""
    recorded = [a.record() for a in run.adaptations]
    if not ran:
        return recorded
    reasons = {a.reason for a in run.adaptations}
    return recorded + [a for a in inherent_adaptations(run.check) if a["reason"] not in reasons]


def inherent_adaptations(check: Check) -> list[dict[str, Any]]:
    """The catalogue's adaptations that hold whenever the check runs (the gateway-hop ones are recorded by
    the check itself, only when it applies them)."""
    conditional = {GATEWAY_PLAINTEXT_ADAPTATION, GATEWAY_MTLS_ADAPTATION}
    return [
        {"reason": text, "manifests": [], "inherent": True} for text in check.adaptations if text not in conditional
    ]


def catalogue_gaps(
    records: Sequence[CheckRecord], implemented: Iterable[str], profiles: Iterable[str] | None = None
) -> list[CheckRecord]:
    """Records for the catalogue checks the run did not select: not applicable, not implemented, or left
    out (not collected, or deselected by -k / -m). ``implemented`` are the IDs the run collected a test of; a
    check the catalogue knows a test of is implemented too. ``profiles`` limits to those profiles."""
    present = {r.check_id for r in records}
    implemented_ids = set(implemented)
    wanted = set(profiles) if profiles is not None else None
    gaps = []
    for check in CATALOGUE.values():
        if check.id in present or (wanted is not None and check.profile.value not in wanted):
            continue
        mode = ",".join(m.value for m in check.modes) or None
        if check.not_applicable:
            result, reason = CheckResult.NOT_APPLICABLE, check.not_applicable
        elif check.id not in implemented_ids and not CATALOGUE.has_test(check.id):
            result, reason = (
                CheckResult.NOT_IMPLEMENTED,
                "the catalogue has this check but the harness has no test for it yet",
            )
        else:
            result, reason = (
                CheckResult.NOT_SELECTED,
                "left out of this run (by the paths it collected, -k, -m or --mesh-mode)",
            )
        gaps.append(CheckRecord(check.id, None, check.profile.value, mode, result, reason))
    return gaps
