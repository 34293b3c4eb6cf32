"""The report collector: a pytest plugin that records every e2e check's result and, at the end of the
session, writes the conformance report (YAML and JSON), its Markdown summary and the Allure results
directory's own files, then scrubs every report file of secrets once more.

Each check's record takes its result and reason from pytest's reports, and from the check's run
(``conformance.engine.check_run.CheckRun``) its adaptations, observed outcomes and probes with their convergence
times, and — when it failed — its evidence files (``conformance.harness.failures``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conformance import PROJECT_ROOT
from conformance.core import evidence, progress, redaction
from conformance.harness.failures import EVIDENCE_KEY
from conformance.harness.fixtures import CHECK_RUN_KEY, ENVIRONMENT_KEY, RUN_KIND_KEY
from conformance.harness.keep import kept
from conformance.harness.run_kinds import PLANNED_REASON
from conformance.report import summary
from conformance.report.certification import RunStatus, Selection
from conformance.report.check_records import (
    CheckRecord,
    CheckResult,
    catalogue_gaps,
    probe_records,
    run_adaptations,
)
from conformance.report.document import (
    PROFILE_MARKERS,
    UNPROFILED,
    ReportInvalid,
    RunInfo,
    build_report,
    scrubbed,
    write_report,
)
from conformance.report.environment import RunEnvironment, git_commit
from conformance.settings.run_settings import Settings
from conformance.spec.catalogue import CATALOGUE

#: The routing oracle's verdicts, beside the plan (``--plan --oracle``).
ORACLE_FILE = "oracle.json"
#: The published schema of oracle.json.
ORACLE_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "oracle.schema.json"


class ReportCollector:
    """Records every e2e check's result (ID, mode, profile, reason, probes, evidence) and writes the report,
    its summary and the Allure results directory's own files at the end."""

    def __init__(self, settings: Settings, config: pytest.Config) -> None:
        self.settings = settings
        self.config = config
        self.records: dict[str, CheckRecord] = {}
        self.items: dict[str, pytest.Item] = {}
        self.implemented: set[str] = set()
        self.status = RunStatus.COMPLETED
        self.status_reason: str | None = None
        #: Verdict -> count, when the routing oracle judged the plan.
        self.oracle_summary: Mapping[str, int] | None = None
        self.run_id = new_run_id()
        self.selection = Selection(
            mark_expression=str(config.getoption("markexpr", "") or ""),
            keyword_expression=str(config.getoption("keyword", "") or ""),
        )

    @property
    def environment(self) -> RunEnvironment:
        return self.config.stash.setdefault(ENVIRONMENT_KEY, RunEnvironment())

    def abort(self, reason: str, selected: Sequence[pytest.Item] = ()) -> None:
        """The run stops before (some of) its checks: every selected check without a result is not run."""
        self.status = RunStatus.ABORTED
        self.status_reason = reason
        for item in selected:
            if item.get_closest_marker("egress"):
                self.records.setdefault(item.nodeid, _record_for(item))
        for record in self.records.values():
            if record.result is CheckResult.NOT_RUN:
                record.reason = f"not run: {reason}"

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self.records.get(report.nodeid)
        if record is None:
            return
        record.duration += report.duration
        if report.skipped and _skip_reason(report) == PLANNED_REASON:
            # A plan walks the check and reports it skipped as planned (conformance.harness.plugin): never a pass.
            record.result = CheckResult.PLANNED
            record.reason = PLANNED_REASON
        elif report.skipped:
            record.result = CheckResult.SKIPPED
            record.reason = _skip_reason(report)
        elif report.failed:
            record.result = CheckResult.FAILED
            record.reason = f"{report.when} failed: {_failure_summary(report)}"
        elif report.when == "call" and record.result is not CheckResult.FAILED:
            record.result = CheckResult.PASSED
            record.reason = None
        if report.when == "teardown":
            item = self.items.get(report.nodeid)
            if item is not None:
                _add_run_details(record, item)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # Before -k / -m deselect anything: every check that has a test.
        for item in items:
            marker = item.get_closest_marker("check")
            if marker is not None and marker.args:
                self.implemented.add(str(marker.args[0]))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            if item.get_closest_marker("egress"):
                self.records.setdefault(item.nodeid, _record_for(item))
                self.items[item.nodeid] = item

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.records and self.status is RunStatus.COMPLETED:
            return
        records = list(self.records.values())
        records += catalogue_gaps(records, self.implemented)
        plan_path = session.config.stash[RUN_KIND_KEY].finish(self.settings.report_dir)
        if plan_path is not None:
            progress.info(f"plan written to {plan_path}")
            if self.settings.oracle:
                self._judge_with_oracle(session, plan_path)
        commit, dirty = git_commit(PROJECT_ROOT)
        failure = kept(session.config)
        run = RunInfo(
            run_id=self.run_id,
            status=self.status,
            status_reason=self.status_reason,
            selection=self.selection,
            harness_commit=commit,
            harness_commit_dirty=dirty,
            kept_for_inspection=failure.reason if failure is not None else None,
            ci=ci_facts(),
            kind=session.config.stash[RUN_KIND_KEY].report_facts,
        )
        report = scrubbed(build_report(records, self.settings, environment=self.environment, run=run))
        report_dir = self.settings.report_dir
        try:
            yaml_path, json_path = write_report(report, report_dir)
        except ReportInvalid as exc:
            progress.info(f"conformance report written to {report_dir}, but it is invalid: {exc}")
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        else:
            progress.info(f"conformance report written to {yaml_path} and {json_path.name}")
        summary_path = summary.write_summary(report, report_dir)
        progress.info(f"summary written to {summary_path}")
        allure_dir = getattr(session.config.option, "allure_report_dir", None)
        if allure_dir:
            properties = allure_environment(report, self.oracle_summary)
            evidence.write_environment_properties(Path(allure_dir), properties)
            evidence.write_categories(Path(allure_dir))

    def _judge_with_oracle(self, session: pytest.Session, plan_path: Path) -> None:
        """The routing oracle's verdict on every planned check, into its report entry and ``oracle.json``.

        A disagreement the catalogue does not explain (``Check.oracle_disagreement``) fails the run; an
        oracle that cannot be built or run is an error of the run, never a verdict.
        """
        from conformance.engine.oracle import run_oracle
        from conformance.engine.oracle_build import OracleError, OracleTimeouts
        from conformance.engine.oracle_verdicts import Verdict

        try:
            with progress.step("routing oracle: predicting every probe's path with Istio's own code"):
                oracle = run_oracle(
                    plan_path,
                    cache_dir=self.settings.cache_dir,
                    timeouts=OracleTimeouts().scaled(self.settings.timeout_scale),
                )
        except OracleError as exc:
            progress.info(f"routing oracle failed: {exc}")
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            return
        oracle_path = self.settings.report_dir / ORACLE_FILE
        document = oracle.as_dict()
        problems = sorted(
            jsonschema.Draft202012Validator(json.loads(ORACLE_SCHEMA.read_text(encoding="utf-8"))).iter_errors(
                document
            ),
            key=str,
        )
        if problems:
            progress.info(f"oracle.json does not follow {ORACLE_SCHEMA.name}: {problems[0].message}")
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        oracle_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        self.oracle_summary = document["summary"]
        by_check = {(r.check_id, r.mode): r for r in self.records.values()}
        unexplained = []
        for (check_id, mode), verdict in oracle.verdicts.items():
            record = by_check.get((check_id, mode))
            entry = {k: v for k, v in verdict.as_dict().items() if k not in ("id", "mode")}
            known = CATALOGUE[check_id].oracle_disagreement if check_id in CATALOGUE else None
            if verdict.verdict is Verdict.DISAGREES:
                if known:
                    entry["knownDisagreement"] = known
                else:
                    unexplained.append(verdict)
            if record is not None:
                record.details["oracle"] = entry
        summary_line = ", ".join(f"{k} {v}" for k, v in oracle.as_dict()["summary"].items())
        progress.info(f"routing oracle ({oracle.branch.name}): {summary_line}; written to {oracle_path}")
        for verdict in unexplained:
            hops = "; ".join(f"{p.probe}: {p.hop}" for p in verdict.probes if p.hop) or "; ".join(verdict.reasons)
            progress.info(f"routing oracle DISAGREES with {verdict.check_id} ({verdict.mode}): {hops}")
        if unexplained:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # The last word on secrets: what other plugins wrote (JUnit, Allure's result files) is scrubbed too.
        places = {self.settings.report_dir}
        allure_dir = getattr(config.option, "allure_report_dir", None)
        if allure_dir:
            places.add(Path(allure_dir))
        for place in places:
            for path in redaction.scrub_tree(place):
                progress.info(f"secret material scrubbed from {path}")


def _add_run_details(record: CheckRecord, item: pytest.Item) -> None:
    """What the check's run recorded: adaptations, observed outcomes, probes, failure evidence."""
    run = item.stash.get(CHECK_RUN_KEY, None)
    if run is not None:
        record.adaptations = run_adaptations(run, ran=record.result in (CheckResult.PASSED, CheckResult.FAILED))
        record.observed = dict(run.observed)
        record.probes = probe_records(run)
        record.expected = run.expected
        record.details = dict(run.details)
    collection = item.stash.get(EVIDENCE_KEY, None)
    if collection is not None:
        record.evidence = [f.record() for f in collection.files]
        record.evidence_errors = list(collection.errors)


def new_run_id() -> str:
    """Sortable and unique: the UTC start time and a random suffix."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


#: GitHub Actions facts recorded in the report when the run happens there (none of them secret).
_CI_VARIABLES = {
    "repository": "GITHUB_REPOSITORY",
    "workflow": "GITHUB_WORKFLOW",
    "runId": "GITHUB_RUN_ID",
    "runAttempt": "GITHUB_RUN_ATTEMPT",
    "sha": "GITHUB_SHA",
    "ref": "GITHUB_REF",
}


def ci_facts(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTIONS") != "true":
        return {}
    facts = {"provider": "github-actions"}
    facts.update({key: env[name] for key, name in _CI_VARIABLES.items() if env.get(name)})
    return facts


def allure_environment(report: Mapping[str, Any], oracle: Mapping[str, int] | None = None) -> dict[str, str]:
    """The Allure report's overview: planned or real, whether each profile can be certified and why not,
    the documentation deviations, the oracle's verdicts, and what ran where on which versions."""
    environment = report["environment"]
    istio = environment["istio"]
    planes = environment["dataPlanes"]
    cni = sorted({p for plane in planes if plane["cni"] for p in plane["cni"]["plugins"]})
    run = report["run"]
    properties = {
        "run.kind": "planned (nothing ran on a cluster)" if run["plan"] else "real (on a cluster)",
        "run.id": run["id"],
        "run.plan": str(run["plan"]).lower(),
        "run.certifiable": str(run["certifiable"]).lower()
        + ("" if run["certifiable"] else ": " + "; ".join(run["notCertifiableBecause"])),
        "implementation": f"{report['implementation']['organization']}/{report['implementation']['project']} "
        f"{report['implementation']['version'] or '(version unknown)'}",
        "harness.version": report["harness"]["version"],
        "harness.commit": report["harness"]["commit"] or "unknown",
        "kubernetes.version": environment["kubernetes"]["version"] or "not observed",
        "kubernetes.provider": environment["kubernetes"]["provider"],
        "istio.version": istio["version"]
        or (f"planned {istio['requestedVersion']}" if report["run"]["plan"] else "not detected"),
        "istio.installedBy": istio["installedBy"],
        "mesh.modes": ",".join(environment["modes"]),
        "cni": ",".join(cni) or "not observed",
    }
    for profile in report["profiles"]:
        why = "; ".join(profile.get("notCertifiableBecause") or [])
        properties[f"certifiable.{profile['name']}"] = "yes" if profile["certifiable"] else f"no: {why}"
    properties["deviations"] = (
        "; ".join(f"{d['id']} ({d['mode'] or '-'}): {d['reason']}" for d in report["deviations"]) or "none"
    )
    if oracle is not None:
        properties["oracle"] = ", ".join(f"{verdict} {count}" for verdict, count in oracle.items())
    if environment["kind"] is not None:
        properties["kind.nodeImage"] = environment["kind"]["nodeImage"]
        properties["kind.version"] = environment["kind"]["version"] or "unknown"
    for mode, method in istio["installMethod"].items():
        properties[f"istio.install.{mode}"] = method
    return properties


def _record_for(item: pytest.Item) -> CheckRecord:
    check = item.get_closest_marker("check")
    check_id = str(check.args[0]) if check and check.args else item.name
    profile = next((name for marker, name in PROFILE_MARKERS.items() if item.get_closest_marker(marker)), UNPROFILED)
    callspec = getattr(item, "callspec", None)
    mode = callspec.params.get("mesh") if callspec is not None else None
    return CheckRecord(
        check_id=check_id,
        nodeid=item.nodeid,
        profile=profile,
        mode=getattr(mode, "value", None),
        # Until a phase reports, a collected check counts as not run: never as passed.
        result=CheckResult.NOT_RUN,
        reason="not run",
    )


def _failure_summary(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = str(getattr(crash, "message", "") or report.longreprtext or "")
    # The whole first line: it carries the fix ("install kind ... and pass --kind-bin PATH"); what follows
    # (observations, history) is in the test output and the evidence files.
    return message.strip().splitlines()[0] if message.strip() else "see the test output"


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def report_collector(config: pytest.Config) -> ReportCollector | None:
    plugin = config.pluginmanager.get_plugin("egress-conformance-report")
    return plugin if isinstance(plugin, ReportCollector) else None


def abort_run(config: pytest.Config, problem: str, selected: Sequence[pytest.Item] = ()) -> None:
    """Stop the run with one message; the conformance report still records why, every check not run."""
    collector = report_collector(config)
    if collector is not None:
        collector.abort(problem, selected)
    pytest.exit(f"egress-conformance: {problem}", returncode=pytest.ExitCode.USAGE_ERROR)
