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
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from conformance import DOCUMENT_API_VERSION, __version__
from conformance.core import redaction
from conformance.report.certification import (
    ProfileSummary,
    RunKindFacts,
    RunStatus,
    Selection,
    certifiable,
    live_run_facts,
    profile_certifiability,
)
from conformance.report.check_records import CheckRecord, CheckResult, deviation_entry
from conformance.report.environment import RunEnvironment
from conformance.settings.implementation import Implementation, upstream_istio
from conformance.settings.options import IstioSource
from conformance.settings.run_settings import Settings
from conformance.spec.model import Profile

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
    #: What the run's kind says of itself (None: a run on a cluster, as the settings describe it).
    kind: RunKindFacts | None = None


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
    kind = run.kind or live_run_facts(settings)
    run_reasons = certifiable(all_records, settings, run.status, run.selection, kind)
    modes = [m.value for m in settings.mesh_modes]
    profile_reasons = {name: profile_certifiability(summary, run_reasons, modes) for name, summary in profiles.items()}
    certified = sorted(name for name, why in profile_reasons.items() if not why)
    reasons = list(run_reasons)
    if not certified and not reasons:
        reasons.append("no profile is certifiable: see each profile's notCertifiableBecause")
    run_section: dict[str, Any] = {"id": run.run_id, "status": run.status.value}
    if run.status_reason:
        run_section["reason"] = run.status_reason
    run_section["plan"] = kind.plan
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
        "observed": environment.kubernetes_version is not None,
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
                **deviation_entry(check, record.expected),
                "observed": observed,
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
