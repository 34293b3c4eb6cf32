"""The Markdown summary of a conformance report: ``conformance-summary.md`` beside the report, and appended
to ``$GITHUB_STEP_SUMMARY`` when the run happens in GitHub Actions.

Its first table has exactly one row per check (ID, mode, profile, result, reason, time to converge), so
tools that collect the summaries of several runs can read it; the documentation deviations follow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conformance.core import redaction

SUMMARY_FILE = "conformance-summary.md"
GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
CHECK_TABLE_HEADER = "| check | mode | profile | result | reason | convergence (s) |"
#: A reason longer than this is cut in the table (the report has it whole).
MAX_CELL = 240


def render_summary(report: Mapping[str, Any]) -> str:
    implementation = report["implementation"]
    run = report["run"]
    verdicts = ", ".join(f"{p['name']} **{p['summary']['result']}**" for p in report["profiles"]) or "no checks"
    who = f"{implementation['project']} {implementation['version'] or '(version unknown)'}"
    lines = [
        f"## Egress conformance: {_cell(who)}",
        "",
        f"{verdicts}. Run `{run['id']}`, {report['date']}, harness {report['harness']['version']}"
        + (f" ({report['harness']['commit'][:12]})" if report["harness"]["commit"] else "")
        + (f", plan run for Istio {report['environment']['istio']['requestedVersion']}" if run["plan"] else "")
        + ".",
        "",
        CHECK_TABLE_HEADER,
        "|---|---|---|---|---|---|",
    ]
    for profile in report["profiles"]:
        for check in profile["checks"]:
            convergence = check.get("convergenceSeconds")
            lines.append(
                f"| {_cell(check['id'])} | {_cell(check.get('mode') or '—')} | {_cell(profile['name'])} "
                f"| {_cell(check['result'])} | {_cell(check.get('reason') or '', bounded=False)} "
                f"| {'' if convergence is None else f'{convergence:.2f}'} |"
            )
    deviations = report["deviations"]
    lines += ["", "### Documentation deviations", ""]
    if deviations:
        lines += [
            "| check | mode | documented | expected | observed | reason |",
            "|---|---|---|---|---|---|",
        ]
        for deviation in deviations:
            observed = "; ".join(deviation["observed"]) or f"({deviation['result']})"
            cells = [
                deviation["id"],
                deviation.get("mode") or "—",
                deviation["documented"],
                "; ".join(deviation.get("expected", [])) or "(not run)",
                observed,
                deviation["reason"],
            ]
            lines.append("| " + " | ".join(_cell(c, bounded=i < 5) for i, c in enumerate(cells)) + " |")
    else:
        lines.append("None among the checks of this run.")
    lines += ["", "### Certification", ""]
    if run["certifiable"]:
        lines.append(f"This report can be handed in to certify {', '.join(run['certifiableProfiles'])}.")
    else:
        lines.append("Not certifiable:")
        lines += [f"- {_cell(reason, bounded=False)}" for reason in run["notCertifiableBecause"]]
    for profile in report["profiles"]:
        if profile["certifiable"]:
            lines.append(f"- **{profile['name']}**: certifiable")
        else:
            why = "; ".join(profile["notCertifiableBecause"])
            lines.append(f"- **{profile['name']}**: not certifiable: {_cell(why, bounded=False)}")
    evidence = report["evidence"]
    if evidence["files"] or evidence["errors"]:
        lines += [
            "",
            f"Failure evidence: {len(evidence['files'])} file(s) under `{evidence['directory']}/` (sha256 in the "
            f"report)"
            + (f", {len(evidence['errors'])} item(s) could not be collected." if evidence["errors"] else "."),
        ]
    return redaction.scrub("\n".join(lines) + "\n")


def write_summary(report: Mapping[str, Any], report_dir: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Write the summary beside the report; append it to $GITHUB_STEP_SUMMARY when that is set."""
    text = render_summary(report)
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / SUMMARY_FILE
    path.write_text(text, encoding="utf-8")
    step_summary = (os.environ if environ is None else environ).get(GITHUB_STEP_SUMMARY)
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(text)
    return path


def _cell(text: str, *, bounded: bool = True) -> str:
    """Table-safe text: one line, pipes escaped; bounded, except reasons, whose fix must stay whole."""
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat if not bounded or len(flat) <= MAX_CELL else flat[: MAX_CELL - 1] + "…"
