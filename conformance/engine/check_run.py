"""The record of one check's run: its action log, adaptations and observations. Every renderer reads it
(the plan, the Allure result, the conformance report, a failed check's evidence)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conformance.engine.actions import CheckActions
from conformance.engine.printout import describe_expectations
from conformance.engine.runtime import LogSource, Observation, Workload
from conformance.spec.model import Check


@dataclass
class Adaptation:
    """What the harness changed to run the documented configuration on this mesh, and why."""

    reason: str
    manifests: tuple[str, ...]

    def record(self) -> dict[str, Any]:
        return {"reason": self.reason, "manifests": list(self.manifests)}


@dataclass
class CheckRun:
    """Everything one check's run produced: actions, adaptations, observations. The report reads it."""

    check: Check
    actions: CheckActions
    adaptations: list[Adaptation] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    #: Outcomes the catalogue asks to record as observed (e.g. a pitfall's actual behaviour).
    observed: dict[str, str] = field(default_factory=dict)
    planned: bool = False
    #: Further facts for the check's report entry, by key (e.g. the config provider that expressed a policy).
    details: dict[str, Any] = field(default_factory=dict)
    #: The clients and proxies the check involves (by ref), known as soon as its fixtures exist: a failed
    #: check's evidence (logs, proxy configuration) is collected from them.
    clients: dict[str, Workload] = field(default_factory=dict)
    proxies: dict[str, LogSource] = field(default_factory=dict)
    #: Wall-clock start of the check: proxy logs of a failed check are read from here on.
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: How the runtime names the values it invented (a plan's addresses), so no rendering shows them as facts.
    placeholders: Callable[[], Mapping[str, str]] = field(default=lambda: {})

    @property
    def expected(self) -> list[str]:
        """What the check expects of upstream Istio, rendered from the expectations it recorded: its requests'
        outcomes and its access-log checks, in order (so far, for a check that stopped early)."""
        return describe_expectations((a.as_dict() for a in self.actions.actions), self.placeholders())
