"""What happens when a check fails: its evidence is collected, its documented deviation is named, and
with ``--keep-on-failure`` the run stops with everything left in place.

A pytest plugin (registered by ``conformance.harness.plugin`` for e2e runs):

* the call phase of a check carries its Allure title and description, and a failing assertion of a check
  with a documented deviation gets a note naming it (Allure's "Documentation deviation" category matches
  the note);
* the report of a failed phase triggers the live runtime's evidence collection, before the check's
  resources are removed (``conformance.runtimes.failure_evidence``); never in a plan run, and a failure to collect
  is recorded without masking the check's own failure;
* with ``--keep-on-failure`` the first failed check is kept (``conformance.harness.keep``), the session stops after
  it, and the terminal summary says how to inspect it.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import pytest

from conformance.core import evidence, progress
from conformance.engine.runtime import Dataplane, ProxyKind
from conformance.harness.fixtures import STEP_KEY, check_of
from conformance.harness.keep import KEPT_KEY, KeptFailure, kept
from conformance.runtimes.failure_evidence import (
    EvidenceCollection,
    EvidenceSource,
    check_directory,
    scenario_namespaces,
)
from conformance.settings.run_settings import Settings
from conformance.spec.model import Check

EVIDENCE_KEY = pytest.StashKey[EvidenceCollection]()


def deviation_note(check: Check, expected: Sequence[str]) -> str:
    shown = "; ".join(expected) or "what the check asserts"
    return (
        f"{evidence.DEVIATION_MARKER} of {check.id}: the documentation says {check.documented!r}, upstream Istio "
        f"shows {shown!r}: {check.deviation}"
    )


def check_description(check: Check, expected: Sequence[str]) -> str:
    """The Allure description of a check: where it comes from, what is documented, and what the check
    expected of upstream Istio (its recorded expectations)."""
    lines = [f"**{check.id}** — {check.title}", ""]
    if check.seed is not None:
        lines.append(f"Seed: `{check.seed.file}`, section “{check.seed.section}”.")
    lines += [f"Documented: {check.documented}", "", "Expected on upstream Istio:"]
    lines += [f"- {line}" for line in expected] or ["- (the check stopped before its first expectation)"]
    if check.deviation:
        lines += ["", f"Documentation deviation: {check.deviation}"]
    for adaptation in check.adaptations:
        lines += ["", f"Possible adaptation: {adaptation}"]
    return "\n".join(lines)


def _expected(item: pytest.Item) -> list[str]:
    step = item.stash.get(STEP_KEY, None)
    return step.run.expected if step is not None else []


class FailureHandling:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        check = check_of(item)
        try:
            return (yield)
        except AssertionError as exc:
            if check is not None and check.deviation:
                exc.add_note(deviation_note(check, _expected(item)))
            raise
        finally:
            # After the body: the description names what the check expected, as it recorded it.
            if check is not None:
                description = check_description(check, _expected(item))
                evidence.describe_check(title=f"{check.id} {check.title}", description=description)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.failed and item.get_closest_marker("egress"):
            self._collect_evidence(item)
            self._keep(item)
        return report

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        failure = kept(terminalreporter.config)
        if failure is None:
            return
        terminalreporter.section("kept for inspection (--keep-on-failure)")
        for line in failure.instructions():
            terminalreporter.line(line)

    # ------------------------------------------------------------------------------------------ evidence

    def _collect_evidence(self, item: pytest.Item) -> None:
        step = item.stash.get(STEP_KEY, None)
        if step is None or item.stash.get(EVIDENCE_KEY, None) is not None:
            return
        runtime = step.runtime
        if not isinstance(runtime, EvidenceSource):  # a plan has no cluster to read evidence from
            return
        check_id, mode = step.run.check.id, runtime.mode.value
        with progress.step(f"collecting the failure evidence of {check_id} ({mode})"):
            try:
                collection = runtime.collect_failure_evidence(step.run, self.settings.report_dir)
            except Exception as exc:  # never mask the check's own failure
                collection = EvidenceCollection(
                    check_id, mode, check_directory(self.settings.report_dir, check_id, mode)
                )
                collection.errors.append(f"evidence collection failed: {type(exc).__name__}: {exc}")
        item.stash[EVIDENCE_KEY] = collection
        progress.info(
            f"{check_id} ({mode}): {len(collection.files)} evidence file(s), {collection.total_bytes} bytes, in "
            f"{collection.directory}"
            + (f"; {len(collection.errors)} item(s) not collected" if collection.errors else "")
        )

    # -------------------------------------------------------------------------------- keep on failure

    def _keep(self, item: pytest.Item) -> None:
        if not self.settings.keep_on_failure or kept(item.config) is not None:
            return
        failure = kept_failure(item)
        item.config.stash[KEPT_KEY] = failure
        item.session.shouldfail = failure.reason + ": the run stops after it"
        for line in failure.instructions():
            progress.info(line)


def kept_failure(item: pytest.Item) -> KeptFailure:
    """Where the failed check's resources are, for the one who inspects them."""
    check = check_of(item)
    check_id = check.id if check is not None else item.name
    step = item.stash.get(STEP_KEY, None)
    if step is None or not isinstance(step.runtime, EvidenceSource):
        return KeptFailure(check_id, None, item.nodeid, None)
    run = step.run
    try:
        access = step.runtime.cluster_access()
    except Exception:
        access = None
    proxies = [f"{w.pod}.{w.namespace}" for w in run.clients.values() if w.dataplane is Dataplane.SIDECAR]
    for source in run.proxies.values():
        if source.kind is not ProxyKind.SIDECAR:
            namespace, _, name = source.workload.partition("/")
            proxies.append(f"deployment/{name}.{namespace}")
    return KeptFailure(
        check_id, step.runtime.mode.value, item.nodeid, access, tuple(scenario_namespaces(run)), tuple(proxies)
    )
