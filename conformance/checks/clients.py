"""Clients run the documented curl commands; a request converges (positive) or holds (negative)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from conformance.checks.curl_args import parse_curl
from conformance.checks.proxies import Proxy
from conformance.checks.step import Step
from conformance.engine.actions import expectation_dict
from conformance.engine.runtime import LogSource, Observation, ProxyKind, Until, Workload
from conformance.probe.curl import CurlRequest
from conformance.probe.log_matchers import Exact, FieldMatcher
from conformance.probe.outcomes import AnyHttp, AnyOutcome, NotOutcome, Outcome
from conformance.probe.responses import ResponseExpectation
from conformance.world.workloads import SIDECAR_CONTAINER


def response_expectation(
    outcome: Outcome | AnyOutcome | AnyHttp | NotOutcome,
    *,
    headers: Mapping[str, str] | None = None,
    headers_present: Sequence[str] = (),
    no_headers_with_prefix: Sequence[str] = (),
    body_contains: str | None = None,
    body: str | None = None,
    json: Mapping[str, FieldMatcher | str] | None = None,
) -> ResponseExpectation:
    json_fields = {name: (Exact(m) if isinstance(m, str) else m) for name, m in (json or {}).items()}
    return ResponseExpectation(
        outcome,
        header_equals=dict(headers or {}),
        headers_present=tuple(headers_present),
        header_prefixes_absent=tuple(no_headers_with_prefix),
        body_contains=body_contains,
        body_equals=body,
        json_fields=json_fields,
    )


class Client:
    """A workload the documented curl commands run in."""

    def __init__(self, step: Step, workload: Workload) -> None:
        self._step = step
        self.workload = workload
        step.run.clients.setdefault(workload.ref, workload)

    @property
    def ip(self) -> str:
        return self.workload.ip

    @property
    def pod(self) -> str:
        return self.workload.pod

    @property
    def namespace(self) -> str:
        return self.workload.namespace

    @property
    def ref(self) -> str:
        return self.workload.ref

    @property
    def sidecar(self) -> Proxy:
        """The client's own proxy (its sidecar's access log)."""
        spec = self.workload.spec
        source = LogSource(ProxyKind.SIDECAR, spec.ref, spec.namespace, spec.selector)
        return Proxy(self._step, source)

    def has_sidecar(self) -> None:
        """The client's pods run Istio's ``istio-proxy`` sidecar: as a container, or as the native sidecar
        (an init container that keeps running) Istio injects on recent Kubernetes. Recorded as a wait."""
        step = self._step
        workload = self.workload
        what = f"{workload.ref} pods run the {SIDECAR_CONTAINER} sidecar"
        step.run.actions.use_workload(workload.record())
        step.run.actions.use_namespace(workload.namespace, workload.namespace_labels)
        with step.action("wait", what, what=what, client=workload.ref, container=SIDECAR_CONTAINER):
            step.runtime.await_sidecar(workload)

    def curl(self, *args: str) -> Request:
        """The documented command, e.g. ``curl("-sI", "http://aliyun.com")``."""
        request = parse_curl(args, self._step.runtime.variables())
        return Request(self._step, self, request, "curl " + " ".join(args))

    def __str__(self) -> str:
        return self.ref


class Request:
    """One documented request and the expectation it is checked against."""

    def __init__(self, step: Step, client: Client, request: CurlRequest, documented: str) -> None:
        self._step = step
        self._client = client
        self._request = request
        self.documented = documented

    def converges_to(self, outcome: Outcome | AnyOutcome | AnyHttp | NotOutcome, **response: Any) -> Observation:
        """Positive check: the response matches N consecutive times within the converge deadline."""
        return self._run(Until.CONVERGES, response_expectation(outcome, **response))

    def is_denied(self, outcome: Outcome | AnyOutcome | AnyHttp | NotOutcome, **response: Any) -> Observation:
        """Negative check: the request ends this way, then keeps ending this way for the hold."""
        return self._run(Until.HOLDS, response_expectation(outcome, **response))

    #: The same negative check, worded for an outcome that is not a denial as such (e.g. ``~http(301)``).
    stays = is_denied

    def _run(self, until: Until, expectation: ResponseExpectation, *, control: bool = False) -> Observation:
        step = self._step
        runtime = step.runtime
        workload = self._client.workload
        actions = step.run.actions
        probe_id = actions.next_probe_id()
        request = self._request
        if until is Until.HOLDS:
            # A blocked connection must cost seconds, not the full request time, on every probe of the hold.
            timeouts = runtime.timeouts
            request = _with_limits(request, timeouts.denied_connect, timeouts.denied_request)
        actions.use_workload(workload.record())
        actions.use_namespace(workload.namespace, workload.namespace_labels)
        verb = "converges to" if until is Until.CONVERGES else "holds"
        fields: dict[str, Any] = {
            "probe": probe_id,
            "client": workload.ref,
            "request": _request_record(request, self.documented),
            "expect": expectation_dict(expectation),
            "until": until.value,
        }
        if control:
            fields["control"] = True
        with step.action("probe", f"{workload.ref}: {self.documented} {verb} {expectation}", **fields) as attach:
            observation = runtime.probe(probe_id, workload, request, expectation, until, step.changed_at)
            attach.text(probe_transcript(observation, self.documented), f"{probe_id}: {self.documented}")
        step.run.observations.append(observation)
        return observation


def probe_transcript(observation: Observation, documented: str) -> str:
    """The whole story of one probe: what was asked and expected, how it ended, every kept attempt."""
    lines = [
        f"# {observation.probe_id} in {observation.client.ref}: {documented}",
        f"# request: {observation.request.display()}",
        f"# expected: {observation.expectation} ({observation.until.value})",
        f"# outcome: {observation.outcome_text}",
        f"# attempts: {observation.attempts}",
    ]
    if observation.converged_after is not None:
        lines.append(f"# converged {observation.converged_after:.3f}s after the last configuration change")
    if observation.result is not None:
        lines.append(f"# final response: {observation.result.summary()}")
    for index, transcript in enumerate(observation.transcripts, start=1):
        lines += ["", f"## attempt {observation.attempts - len(observation.transcripts) + index}", transcript]
    return "\n".join(lines) + "\n"


def _with_limits(request: CurlRequest, connect: float, total: float) -> CurlRequest:
    return replace(request, connect_timeout=connect, max_time=total)


def _request_record(request: CurlRequest, documented: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "method": request.method,
        "url": request.url,
        "headers": dict(request.headers),
        "display": documented,
    }
    if request.data is not None:
        record["body"] = request.data
    if request.cert:
        record["clientCertificate"] = True
    if request.cacert:
        record["caFile"] = request.cacert
    return record
