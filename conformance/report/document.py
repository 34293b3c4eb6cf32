"""The machine-readable conformance report, fit for vendor certification.

Every check of the catalogue is in the report: the selected ones with their result (passed, failed,
skipped with its reason, planned, not run when the run stopped early), the others as not selected, not
implemented or not applicable — so a partial run can never look like a full pass. The shape follows the
Gateway API ``ConformanceReport`` (implementation, date, a summary per profile with statistics, the
failed and skipped checks) and goes beyond it: the run's identity and certifiability, the environment as
observed (Kubernetes, nodes, CNI, Istio and how it was installed, the image digests actually running),
each check's probes and time to converge, the documentation deviations and the adaptations that ran, and
a sha256 for every evidence file of a failed check.

The same document is written as ``conformance-report.yaml`` and ``conformance-report.json``; both are
validated against the published schema ``conformance/schemas/conformance-report.schema.json`` and scrubbed
of secrets before they are written.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from conformance import DOCUMENT_API_VERSION, __version__
from conformance.core import redaction
from conformance.engine.check_run import CheckRun
from conformance.report.environment import RunEnvironment
from conformance.settings.implementation import Implementation, upstream_istio
from conformance.settings.options import IstioSource
from conformance.settings.run_settings import Settings
from conformance.spec.catalogue import CATALOGUE
from conformance.spec.model import Check, Profile, Tier
from conformance.spec.record_texts import GATEWAY_MTLS_ADAPTATION, GATEWAY_PLAINTEXT_ADAPTATION

REPORT_FILE = "conformance-report.yaml"
REPORT_JSON_FILE = "conformance-report.json"
REPORT_API_VERSION = DOCUMENT_API_VERSION
REPORT_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "conformance-report.schema.json"

#: Marker -> profile name in the report.
PROFILE_MARKERS = {
    "egress_sidecar": Profile.EGRESS_SIDECAR.value,
    "egress_ambient": Profile.EGRESS_AMBIENT.value,
    "external_world": Profile.EXTERNAL_WORLD.value,
}
UNPROFILED = "UNPROFILED"
#: The one ``-m`` expression that selects the whole suite.
FULL_SUITE_MARKEXPR = "egress"


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


class ProfileResult(enum.StrEnum):
    SUCCESS = "success"
    #: Nothing failed but some core check did not pass (skipped, not run, not implemented, ...).
    PARTIAL = "partial"
    FAILURE = "failure"


class RunStatus(enum.StrEnum):
    COMPLETED = "completed"
    ABORTED = "aborted"


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
            data["deviation"] = {"documented": check.documented, "expected": check.expected, "reason": check.deviation}
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


#: Results that count as a problem for a profile without being a failure.
_INCOMPLETE = frozenset(
    {
        CheckResult.SKIPPED,
        CheckResult.PLANNED,
        CheckResult.NOT_RUN,
        CheckResult.NOT_SELECTED,
        CheckResult.NOT_IMPLEMENTED,
    }
)


@dataclass
class ProfileSummary:
    name: str
    checks: list[CheckRecord] = field(default_factory=list)

    def count(self, result: CheckResult) -> int:
        return sum(1 for c in self.checks if c.result is result)

    @property
    def result(self) -> ProfileResult:
        if self.count(CheckResult.FAILED):
            return ProfileResult.FAILURE
        core = [c for c in self.checks if c.core and c.result is not CheckResult.NOT_APPLICABLE]
        if not core or any(c.result in _INCOMPLETE for c in core):
            return ProfileResult.PARTIAL
        return ProfileResult.SUCCESS

    def as_dict(self, not_certifiable_because: Sequence[str] = ()) -> dict[str, Any]:
        certification: dict[str, Any] = {"certifiable": not not_certifiable_because}
        if not_certifiable_because:
            certification["notCertifiableBecause"] = list(not_certifiable_because)
        return {
            "name": self.name,
            "summary": {
                "result": self.result.value,
                "statistics": {r.value: self.count(r) for r in CheckResult},
            },
            **certification,
            "failedChecks": sorted({c.check_id for c in self.checks if c.result is CheckResult.FAILED}),
            "skippedChecks": sorted({c.check_id for c in self.checks if c.result is CheckResult.SKIPPED}),
            "notPassedChecks": [
                {"id": c.check_id, "mode": c.mode, "result": c.result.value, "reason": c.reason or c.result.value}
                for c in self.checks
                if c.result is not CheckResult.PASSED
            ],
            "checks": [c.as_dict() for c in self.checks],
        }


def catalogue_gaps(
    records: Sequence[CheckRecord], implemented: Iterable[str], profiles: Iterable[str] | None = None
) -> list[CheckRecord]:
    """Records for the catalogue checks the run did not select: not applicable, not implemented, or left
    out by -k / -m. ``implemented`` are the IDs that have a test; ``profiles`` limits to those profiles."""
    present = {r.check_id for r in records}
    implemented_ids = set(implemented)
    wanted = set(profiles) if profiles is not None else None
    gaps = []
    for check in CATALOGUE.values():
        if check.id in present or (wanted is not None and check.profile.value not in wanted):
            continue
        mode = ",".join(m.value for m in check.modes) or None
        if check.not_applicable:
            gaps.append(
                CheckRecord(check.id, None, check.profile.value, mode, CheckResult.NOT_APPLICABLE, check.not_applicable)
            )
        elif check.id not in implemented_ids:
            gaps.append(
                CheckRecord(
                    check.id,
                    None,
                    check.profile.value,
                    mode,
                    CheckResult.NOT_IMPLEMENTED,
                    "the catalogue has this check but the harness has no test for it yet",
                )
            )
        else:
            gaps.append(
                CheckRecord(
                    check.id,
                    None,
                    check.profile.value,
                    mode,
                    CheckResult.NOT_SELECTED,
                    "left out of this run by -k / -m / --mesh-mode",
                )
            )
    return gaps


@dataclass(frozen=True)
class Selection:
    """How the run chose its checks (pytest's ``-m`` and ``-k``)."""

    mark_expression: str = FULL_SUITE_MARKEXPR
    keyword_expression: str = ""

    def record(self) -> dict[str, Any]:
        return {"markExpression": self.mark_expression, "keywordExpression": self.keyword_expression or None}


@dataclass(frozen=True)
class RunInfo:
    """The run's identity and how it went."""

    run_id: str
    status: RunStatus = RunStatus.COMPLETED
    status_reason: str | None = None
    selection: Selection = field(default_factory=Selection)
    harness_commit: str | None = None
    harness_commit_dirty: bool | None = None
    #: Set when --keep-on-failure stopped the run: the check left in place.
    kept_for_inspection: str | None = None
    #: CI facts (GitHub Actions run) when the run happened there.
    ci: Mapping[str, str] = field(default_factory=dict)


#: The profiles a report can certify; EXTERNAL-WORLD checks the harness itself.
CERTIFICATION_PROFILES = ("EGRESS-SIDECAR", "EGRESS-AMBIENT")
EXTERNAL_WORLD_PROFILE = "EXTERNAL-WORLD"


def certifiable(
    records: Sequence[CheckRecord], settings: Settings, status: RunStatus, selection: Selection | None = None
) -> list[str]:
    """Why no profile of the run can be handed in for certification, whatever its checks show (empty when
    the run as a whole qualifies; each profile adds its own reasons, see :func:`profile_certifiability`)."""
    selection = selection or Selection()
    reasons: list[str] = []
    if settings.plan:
        reasons.append("plan run: nothing was carried out on a cluster")
    if status is RunStatus.ABORTED:
        reasons.append("the run stopped before its checks ran")
    if selection.mark_expression.strip() != FULL_SUITE_MARKEXPR:
        reasons.append(
            f"narrowed by -m {selection.mark_expression!r}: only `-m {FULL_SUITE_MARKEXPR}` selects the whole suite "
            "(choose data-plane modes with --mesh-mode)"
        )
    if selection.keyword_expression.strip():
        reasons.append(f"narrowed by -k {selection.keyword_expression!r}")
    if settings.istio_source is IstioSource.INSTALL and not settings.plan:
        reasons.append(
            "the harness installed upstream Istio itself: a reference run of upstream Istio, not of an "
            "implementation under test (certify an installation with --istio existing and --implementation-file)"
        )
    if settings.implementation is None and settings.istio_source is IstioSource.EXISTING:
        reasons.append("the Istio under test is not described: pass --implementation-file")
    if settings.istio_overlay is not None:
        reasons.append(
            f"Istio was installed with --istio-overlay {settings.istio_overlay.name}, which changes Istio's "
            "defaults: the configuration under test is not the documented one"
        )
    failing = sorted(
        r.check_id for r in records if r.profile == EXTERNAL_WORLD_PROFILE and r.result is CheckResult.FAILED
    )
    if failing:
        reasons.append(f"the harness's checks of its own external world failed ({', '.join(failing)})")
    return reasons


def profile_certifiability(profile: ProfileSummary, run_reasons: Sequence[str], modes: Sequence[str]) -> list[str]:
    """Why ``profile`` cannot be certified by this report (empty when it can)."""
    if profile.name not in CERTIFICATION_PROFILES:
        return ["the harness's checks of itself: a condition of every other profile, not a profile to certify"]
    reasons = list(run_reasons)
    core = [c for c in profile.checks if c.core]

    def ids(result: CheckResult) -> str:
        return ", ".join(sorted({c.check_id for c in core if c.result is result}))

    if any(c.result is CheckResult.NOT_SELECTED for c in core):
        reasons.append(
            f"its checks were not selected (this run: --mesh-mode {','.join(modes)}; -k / -m narrow too): "
            + ids(CheckResult.NOT_SELECTED)
        )
    for result, what in (
        (CheckResult.FAILED, "failed"),
        (CheckResult.SKIPPED, "were skipped"),
        (CheckResult.NOT_RUN, "did not run"),
        (CheckResult.NOT_IMPLEMENTED, "are not implemented"),
    ):
        if any(c.result is result for c in core):
            reasons.append(f"core checks {what}: {ids(result)}")
    return reasons


def implementation_of(settings: Settings, istio_version: str | None) -> Implementation:
    """The implementation block: the vendor's file, else upstream Istio at the version installed or found."""
    if settings.implementation is not None:
        return settings.implementation
    return upstream_istio(istio_version or "")


def build_report(
    records: Iterable[CheckRecord],
    settings: Settings,
    *,
    environment: RunEnvironment | None = None,
    run: RunInfo | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The report document (not yet validated; see :func:`write_report`)."""
    environment = environment or RunEnvironment()
    run = run or RunInfo(run_id="unnamed")
    all_records = list(records)
    profiles: dict[str, ProfileSummary] = {}
    for record in all_records:
        profiles.setdefault(record.profile, ProfileSummary(record.profile)).checks.append(record)
    run_reasons = certifiable(all_records, settings, run.status, run.selection)
    modes = [m.value for m in settings.mesh_modes]
    profile_reasons = {name: profile_certifiability(summary, run_reasons, modes) for name, summary in profiles.items()}
    certified = sorted(name for name, why in profile_reasons.items() if not why)
    reasons = list(run_reasons)
    if not certified and not reasons:
        reasons.append("no profile is certifiable: see each profile's notCertifiableBecause")
    run_section: dict[str, Any] = {"id": run.run_id, "status": run.status.value}
    if run.status_reason:
        run_section["reason"] = run.status_reason
    run_section["plan"] = settings.plan
    run_section["certifiable"] = not reasons
    if reasons:
        run_section["notCertifiableBecause"] = reasons
    run_section["certifiableProfiles"] = certified
    run_section["selection"] = run.selection.record()
    run_section["timeoutScale"] = settings.timeout_scale
    run_section["keepOnFailure"] = settings.keep_on_failure
    if run.kept_for_inspection:
        run_section["keptForInspection"] = run.kept_for_inspection
    if run.ci:
        run_section["ci"] = dict(run.ci)
    implementation = implementation_of(settings, environment.istio_version).as_dict()
    if not implementation["version"]:
        implementation["version"] = None  # nothing installed or detected: no version is claimed
    return {
        "apiVersion": REPORT_API_VERSION,
        "kind": "ConformanceReport",
        "implementation": implementation,
        "date": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        "harness": {
            "name": "egress-conformance",
            "version": __version__,
            "commit": run.harness_commit,
            "commitDirty": run.harness_commit_dirty,
        },
        "run": run_section,
        "environment": environment_section(settings, environment),
        "profiles": [profiles[name].as_dict(profile_reasons[name]) for name in sorted(profiles)],
        "deviations": deviations(all_records),
        "adaptations": [
            {"id": r.check_id, "mode": r.mode, **adaptation} for r in all_records for adaptation in r.adaptations
        ],
        "evidence": evidence_section(all_records),
    }


def environment_section(settings: Settings, environment: RunEnvironment) -> dict[str, Any]:
    installing = settings.istio_source is IstioSource.INSTALL
    kind = None
    if not settings.uses_existing_cluster:
        kind = {
            "version": environment.kind_version,
            "nodeImage": settings.kind_image,
            "config": str(settings.kind_config) if settings.kind_config else None,
            "imagesLoaded": list(environment.images_loaded),
        }
    overlay = None
    if installing and settings.istio_overlay is not None:
        overlay = {"file": str(settings.istio_overlay), "content": settings.istio_overlay.read_text(encoding="utf-8")}
    return {
        # Observed only when the run reached a cluster and read it (a plan run, or one that stopped
        # before, observed nothing).
        "observed": not settings.plan and environment.kubernetes_version is not None,
        "kubernetes": {
            "version": environment.kubernetes_version,
            "provider": "existing" if settings.uses_existing_cluster else "kind",
            "nodes": list(environment.nodes),
        },
        "kind": kind,
        "istio": {
            "version": environment.istio_version,
            "requestedVersion": settings.istio_version if installing else None,
            "installedBy": "harness" if installing else "existing",
            "installMethod": dict(environment.install_method),
            "istioctlVersion": environment.istioctl_version,
            "hub": settings.istio_hub if installing else None,
            "tag": settings.istio_image_tag if installing else None,
            "overlay": overlay,
        },
        "imageMap": settings.image_map.record(),
        "modes": [m.value for m in settings.mesh_modes],
        "dataPlanes": [environment.data_planes[mode].record() for mode in sorted(environment.data_planes)],
        "errors": list(environment.errors),
    }


def deviations(records: Iterable[CheckRecord]) -> list[dict[str, Any]]:
    """Every check with a documented deviation: what the documentation says, what upstream Istio shows,
    what this run observed, and why they differ."""
    found = []
    for record in records:
        check = record.check
        if check is None or not check.deviation:
            continue
        observed = [f"{p['id']}: {p['outcome']}" for p in record.probes if p.get("outcome")]
        observed += [f"{label}: {outcome}" for label, outcome in record.observed.items()]
        if record.result is CheckResult.FAILED and record.reason:
            observed.append(record.reason)
        found.append(
            {
                "id": record.check_id,
                "mode": record.mode,
                "result": record.result.value,
                "documented": check.documented,
                "expected": check.expected,
                "observed": observed,
                "reason": check.deviation,
            }
        )
    return found


def evidence_section(records: Iterable[CheckRecord]) -> dict[str, Any]:
    files = []
    errors = []
    for record in records:
        files += [{"id": record.check_id, "mode": record.mode, **item} for item in record.evidence]
        errors += [{"id": record.check_id, "mode": record.mode, "error": error} for error in record.evidence_errors]
    return {"directory": "evidence", "files": files, "errors": errors}


# ---------------------------------------------------------------------------------------- writing


class ReportInvalid(ValueError):
    """The report breaks its published schema (a harness defect: the report is written all the same)."""


@lru_cache(maxsize=1)
def report_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(REPORT_SCHEMA.read_text(encoding="utf-8"))
    return schema


def validate_report(document: Mapping[str, Any]) -> None:
    """Raise ReportInvalid naming every place the document breaks the published schema."""
    validator = jsonschema.Draft202012Validator(report_schema())
    problems = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if problems:
        lines = [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in problems[:20]]
        raise ReportInvalid("the conformance report breaks its schema:\n  " + "\n  ".join(lines))


def scrubbed(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document with every string scrubbed of secrets."""
    cleaned: dict[str, Any] = json.loads(redaction.scrub(json.dumps(document)))
    return cleaned


def write_report(report: Mapping[str, Any], report_dir: Path) -> tuple[Path, Path]:
    """Write the report as YAML and JSON (scrubbed); validate it. Returns (yaml path, json path).

    The files are written even when the report breaks its schema (nothing of the run is lost); the
    ReportInvalid is raised afterwards.
    """
    document = scrubbed(report)
    report_dir.mkdir(parents=True, exist_ok=True)
    yaml_path = report_dir / REPORT_FILE
    json_path = report_dir / REPORT_JSON_FILE
    yaml_path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    validate_report(document)
    return yaml_path, json_path
