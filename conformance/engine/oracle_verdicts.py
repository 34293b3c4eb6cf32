"""The oracle's verdicts: per probe, per check, and the three values a verdict takes."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Verdict(enum.StrEnum):
    AGREES = "agrees"
    DISAGREES = "disagrees"
    NOT_PREDICTED = "not-predicted"


@dataclass(frozen=True)
class ProbeVerdict:
    probe: str
    verdict: Verdict
    predicted: str
    outcome: str
    reasons: tuple[str, ...] = ()
    hop: str | None = None
    assumptions: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "probe": self.probe,
            "oracle": self.verdict.value,
            "predictedPath": self.predicted,
            "predictedOutcome": self.outcome,
        }
        if self.hop:
            data["partsAt"] = self.hop
        if self.reasons:
            data["reasons"] = list(self.reasons)
        if self.assumptions:
            data["assumptions"] = list(self.assumptions)
        return data


@dataclass(frozen=True)
class CheckVerdict:
    check_id: str
    mode: str
    verdict: Verdict
    probes: tuple[ProbeVerdict, ...] = ()
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.check_id, "mode": self.mode, "oracle": self.verdict.value}
        if self.reasons:
            data["reasons"] = list(self.reasons)
        if self.probes:
            data["probes"] = [p.as_dict() for p in self.probes]
        if self.warnings:
            data["analyzeWarnings"] = list(self.warnings)
        return data
