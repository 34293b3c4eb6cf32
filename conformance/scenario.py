"""The scenario API: a check reads like the documented step it verifies.

::

    @check("EGW-04")
    def test_gateway_routes_http_egress(step, sleep, egress_gateway):
        step.mesh(outbound=REGISTRY_ONLY)
        step.apply("egw/service-entry.yaml", "egw/gateway-and-routes.yaml")
        step.sidecars_reach(egress_gateway, over=PLAINTEXT, namespace="default")
        r = sleep.curl("-sI", "http://aliyun.com").converges_to(http(301))
        egress_gateway.log_for(r).has(upstream_cluster="outbound|80||aliyun.com", method="HEAD",
                                      downstream_remote_address=host(sleep.ip))

* ``step`` applies manifests from ``manifests/scenarios/`` (rendered, strictly validated first), changes
  mesh-wide settings, and at the end of the check removes what it created, releases what it changed and
  restores the mesh settings — waiting for the removal.
* Clients (``sleep``, ``nginx``, ...) run the documented curl command; ``converges_to`` is a positive check
  (N consecutive matches), ``is_denied`` / ``stays`` a negative one (observed, then held).
* Proxies (``egress_gateway``, ``sleep.sidecar``, a waypoint) find the access-log entry of a request and
  match its fields; ``no_log_for`` proves an absence after a positive control.

Every action is recorded (``conformance.actions``): a plan run writes the records as ``plan.json``, a real
run keeps them as evidence; every applied manifest, probe transcript and matched log entry is attached to
the check's Allure result. What actually happens is the runtime's business (``conformance.runtime``).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

import yaml

from conformance import crossref, evidence, manifests, progress, versions
from conformance.accesslog import (
    Absent,
    AccessLogEntry,
    Exact,
    FieldMatcher,
    FieldSpec,
    HostOfAddress,
    LogExpectation,
    PortOfAddress,
    Prefix,
    compile_spec,
)
from conformance.actions import (
    CheckActions,
    expectation_dict,
    matcher_dict,
    object_ref,
    redacted,
    ref_dict,
    resources_dict,
)
from conformance.catalogue import GATEWAY_MTLS_ADAPTATION, GATEWAY_PLAINTEXT_ADAPTATION, Check
from conformance.egress_policy import AppliedPolicy, EgressPolicies, EgressProtocol, ExternalPort
from conformance.kube import ObjectRef
from conformance.mesh_config import OutboundMode
from conformance.probe import (
    CONN_REFUSED,
    CONN_RESET,
    DNS_FAIL,
    NON_HTTP_REPLY,
    TIMEOUT,
    TLS_RESET,
    AnyHttp,
    AnyOutcome,
    CurlRequest,
    NotOutcome,
    Outcome,
    ResponseExpectation,
    http,
)
from conformance.runtime import (
    Applied,
    EgressGatewayInfo,
    LogLookup,
    LogSource,
    Observation,
    ProxyKind,
    Runtime,
    Until,
    Workload,
)
from conformance.validation import SchemaRegistry, Validator
from conformance.workloads import SIDECAR_CONTAINER

__all__ = [
    "ALLOW_ANY",
    "CONN_REFUSED",
    "CONN_RESET",
    "DNS_FAIL",
    "ISTIO_MUTUAL",
    "NON_HTTP_REPLY",
    "PLAINTEXT",
    "REGISTRY_ONLY",
    "TIMEOUT",
    "TLS_RESET",
    "AppliedPolicy",
    "Client",
    "EgressGateway",
    "EgressPolicies",
    "EgressProtocol",
    "ExternalPort",
    "GatewayHop",
    "Proxy",
    "Request",
    "Step",
    "Waypoint",
    "host",
    "http",
    "port",
    "prefix",
]

ALLOW_ANY = OutboundMode.ALLOW_ANY
REGISTRY_ONLY = OutboundMode.REGISTRY_ONLY

#: Scenario manifests live here, under ``manifests/``.
SCENARIO_MANIFESTS = "scenarios"
#: The harness's own configuration (adaptations, positive controls), beside the documented one.
HARNESS_MANIFESTS = "scenarios/harness"


class GatewayHop(StrEnum):
    """How the documented configuration has sidecars talk to the egress gateway."""

    #: Plain HTTP to a plain ``HTTP`` gateway server (seed 003).
    PLAINTEXT = "plaintext"
    #: Mesh mTLS to an ``ISTIO_MUTUAL`` gateway server (seeds 001 and 002).
    ISTIO_MUTUAL = "istio-mutual"


PLAINTEXT = GatewayHop.PLAINTEXT
ISTIO_MUTUAL = GatewayHop.ISTIO_MUTUAL


def host(address: str) -> HostOfAddress:
    """Access-log matcher: an address field whose host is ``address``."""
    return HostOfAddress(address)


def port(number: int) -> PortOfAddress:
    """Access-log matcher: an address field on port ``number``."""
    return PortOfAddress(number)


#: Access-log matcher: the field has no value (Envoy's ``-``, JSON null).
ABSENT = Absent()


def prefix(text: str) -> Prefix:
    """Matcher: a string starting with ``text`` (access-log fields, JSON body fields)."""
    return Prefix(text)


class ScenarioError(RuntimeError):
    """Scenario code asked for something that cannot be done (a bad manifest, an unknown curl flag)."""


class CrossReferenceError(AssertionError):
    """A step's configuration breaks a cross-reference rule its check does not declare: the check fails
    with the rule's message before anything of the step is applied."""


@lru_cache(maxsize=4)
def _validator(istio_version: str) -> Validator:
    """Strict validation against the CRDs of the run's Istio minor (and its Gateway API bundle)."""
    try:
        minor = versions.istio_minor(istio_version)
    except ValueError:  # an installed Istio the harness has no schemas for: the default minor's
        return Validator()
    return Validator(SchemaRegistry.for_istio_minor(minor))


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


class Step:
    """The configuration side of one check: mesh settings and manifests, tracked and undone afterwards."""

    def __init__(self, run: CheckRun, runtime: Runtime) -> None:
        self.run = run
        self.runtime = runtime
        self._label = run.check.seed.section if run.check.seed else run.check.title
        self._created: dict[ObjectRef, None] = {}
        self._changed: dict[ObjectRef, None] = {}
        self._undo = ExitStack()
        #: The check's configuration in force (what it applied, minus what it deleted), for the rules.
        self._configuration = crossref.Configuration()
        #: Monotonic time of the last configuration change: convergence is measured from it.
        self.changed_at: float | None = None
        self._closed = False

    # ------------------------------------------------------------------------------------------ records

    @property
    def check(self) -> Check:
        return self.run.check

    @property
    def label(self) -> str:
        return self._label

    @contextlib.contextmanager
    def documented(self, title: str) -> Iterator[None]:
        """Group the actions of the block under one documented step (its title in the harness's words)."""
        previous, self._label = self._label, title
        try:
            with evidence.step(title):
                yield
        finally:
            self._label = previous

    def _record(self, type_: str, **fields: Any) -> None:
        action = self.run.actions.add(type_, self._label, **fields)
        if self.runtime.planning:
            line = describe_action(action.as_dict(), self.runtime.placeholders())
            progress.info(f"[{self.check.id} {self.runtime.mode.value}] {line}")

    def record_observed(self, label: str, observation: Observation) -> None:
        """Keep an observation's outcome for the report (the catalogue asks for it, e.g. a pitfall)."""
        self.run.observed[label] = observation.outcome_text

    def _changed_now(self) -> None:
        self.changed_at = time.monotonic()

    # ---------------------------------------------------------------------------------------- mesh-wide

    def mesh(self, *, outbound: OutboundMode) -> None:
        """Set the mesh-wide outboundTrafficPolicy; the original mesh config is restored after the check."""
        with evidence.step(f"mesh outboundTrafficPolicy {outbound.value}"):
            self._record("mesh", outboundTrafficPolicy=outbound.value)
            self._undo.enter_context(self.runtime.outbound_policy(outbound))
            self._changed_now()

    # -------------------------------------------------------------------------------------- manifests

    def render(self, manifest: str, extra: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """A scenario manifest rendered with the run's variables and strictly validated."""
        relative = manifest if manifest.startswith(f"{SCENARIO_MANIFESTS}/") else f"{SCENARIO_MANIFESTS}/{manifest}"
        variables = {**self.runtime.variables(), **(extra or {})}
        docs = manifests.render(relative, variables)
        problems = [
            str(p) for doc in docs for p in _validator(self.runtime.istio_version).validate(doc, source=relative)
        ]
        if problems:
            raise ScenarioError(f"{relative} fails strict validation:\n  " + "\n  ".join(problems))
        for doc in docs:
            if doc.get("kind") != "Namespace" and not (doc.get("metadata") or {}).get("namespace"):
                raise ScenarioError(f"{relative}: {doc.get('kind')} {doc['metadata'].get('name')} has no namespace")
        return docs

    def apply(self, *manifest_files: str, adaptation: str | None = None, **variables: str) -> list[Applied]:
        """Apply scenario manifests (server-side, in order); objects they create are removed after the check,
        objects they change are released (the harness's fields dropped)."""
        docs = [doc for name in manifest_files for doc in self.render(name, variables)]
        self._check_cross_references(docs, manifest_files)
        title = "apply " + ", ".join(manifest_files) + (" (adaptation)" if adaptation else "")
        with evidence.step(title):
            record: dict[str, Any] = {"sources": list(manifest_files), "resources": resources_dict(docs)}
            if adaptation:
                record["adaptation"] = adaptation
            self._record("apply", **record)
            evidence.attach_yaml(
                yaml.safe_dump_all([redacted(d) for d in docs], sort_keys=False), " + ".join(manifest_files)
            )
            applied = self.runtime.apply(docs)
        for item in applied:
            if item.created is False and item.ref not in self._created:
                self._changed.setdefault(item.ref, None)
            else:
                self._created.setdefault(item.ref, None)
        self._changed_now()
        return applied

    def _check_cross_references(self, docs: Sequence[Mapping[str, Any]], sources: Sequence[str]) -> None:
        """The step's whole configuration (this apply plus what the check applied before) against the
        cross-reference rules, before anything of it reaches the cluster."""
        configuration = self._configuration.copy()
        configuration.apply(docs)
        gateway = self.runtime.egress_gateway()
        # The check's clients exist before its body runs (they are its fixtures): all of them are known here.
        workloads = [client.record() for client in self.run.clients.values()]
        context = crossref.Context.of_run(gateway.record() if gateway else None, workloads, self.runtime.mode.value)
        problems = crossref.configuration_problems(configuration, context, crossref.declared_breaks(self.check.id))
        if problems:
            raise CrossReferenceError(
                f"{self.check.id}: applying {', '.join(sources)} would leave a configuration that "
                + "; ".join(problems)
            )
        self._configuration = configuration

    def delete(self, *manifest_files: str) -> None:
        """Delete what these manifests define (e.g. revoke a policy) and wait until it is gone."""
        refs = [object_ref(doc) for name in manifest_files for doc in self.render(name)]
        self._configuration.delete(ref_dict(ref) for ref in refs)
        with evidence.step("delete " + ", ".join(manifest_files)):
            self._record("delete", resources=[ref_dict(r) for r in refs])
            self.runtime.delete(refs)
        for ref in refs:
            self._created.pop(ref, None)
        self._changed_now()

    def wait_for(self, manifest_file: str, condition: str, status: str = "True", *, kind: str | None = None) -> None:
        """Wait until an object of the manifest (the first of ``kind`` when given) reports a condition."""
        docs = [d for d in self.render(manifest_file) if kind is None or d.get("kind") == kind]
        if not docs:
            raise ScenarioError(f"{manifest_file} holds no {kind or 'object'}")
        ref = object_ref(docs[0])
        with evidence.step(f"wait for {ref} {condition}={status}"):
            self._record("wait", what=f"{ref} condition {condition}={status}", resource=ref_dict(ref),
                         condition=condition, status=status)  # fmt: skip
            self.runtime.wait_condition(ref, condition, status)

    def adapt(self, *manifest_files: str, reason: str, **variables: str) -> Adaptation:
        """Apply manifests that adapt the documented configuration to this mesh (a harness-only resource, or
        a documented one with a field changed), and record the adaptation and its reason for the report."""
        self.apply(*manifest_files, adaptation=reason, **variables)
        adaptation = Adaptation(reason, tuple(f"{SCENARIO_MANIFESTS}/{name}" for name in manifest_files))
        self.run.adaptations.append(adaptation)
        return adaptation

    # ------------------------------------------------------------------------------- the gateway hop

    def sidecars_reach(
        self, gateway: EgressGateway, *, over: GatewayHop, namespace: str, sni: str | None = None
    ) -> Adaptation | None:
        """Make sidecars in ``namespace`` talk to the egress gateway the way the documentation assumes.

        Whether a sidecar sends mTLS to the gateway depends on the gateway pods' label
        ``security.istio.io/tlsMode=istio`` unless a DestinationRule for the gateway host decides (the
        specification's rule for the sidecar profile). The harness applies the minimal DestinationRule for
        the installed gateway, or nothing when the gateway already behaves as documented, and records which.
        ``sni`` is needed when the gateway server lists hosts (it then matches on SNI).
        """
        labelled = gateway.info.tls_mode_label
        if over is GatewayHop.PLAINTEXT and labelled:
            reason, manifest, variables = GATEWAY_PLAINTEXT_ADAPTATION, "gateway-plaintext.yaml", {}
        elif over is GatewayHop.ISTIO_MUTUAL and not labelled:
            reason = GATEWAY_MTLS_ADAPTATION
            manifest = "gateway-istio-mutual-sni.yaml" if sni else "gateway-istio-mutual.yaml"
            variables = {"SNI": sni} if sni else {}
        else:
            return None
        adaptation = Adaptation(reason, (f"{HARNESS_MANIFESTS}/{manifest}",))
        self.apply(f"harness/{manifest}", adaptation=reason, CLIENT_NAMESPACE=namespace,
                   EGRESS_GATEWAY_HOST=gateway.info.host, **variables)  # fmt: skip
        self.run.adaptations.append(adaptation)
        return adaptation

    # -------------------------------------------------------------------------------------- cleanup

    def cleanup(self) -> None:
        """Undo the check: delete what it created, release what it changed, restore mesh settings."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        created = list(self._created)
        changed = [ref for ref in self._changed if ref not in self._created]
        with evidence.step("clean up"):
            if created:
                self._record("delete", resources=[ref_dict(r) for r in created], cleanup=True)
                try:
                    self.runtime.delete(created)
                except Exception as exc:  # the other undo steps still run; the first error is raised
                    errors.append(exc)
            if changed:
                try:
                    self.runtime.release(changed)
                except Exception as exc:
                    errors.append(exc)
            try:
                self._undo.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


# -------------------------------------------------------------------------------------------- clients


_CURL_FLAGS_WITH_VALUE = {
    "-H": "header",
    "--header": "header",
    "-X": "method",
    "--request": "method",
    "-d": "data",
    "--data": "data",
    "--data-raw": "data",
    "--cacert": "cacert",
    "--cert": "cert",
    "--key": "key",
    "--resolve": "resolve",
    # Output shaping of the documented command; the harness reads the whole response itself.
    "-o": "ignored",
    "--output": "ignored",
    "-w": "ignored",
    "--write-out": "ignored",
}
_CURL_SHORT_SWITCHES = set("sSiI")
_PLACEHOLDER = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)\}?")


def parse_curl(args: Sequence[str], variables: Mapping[str, str]) -> CurlRequest:
    """The documented curl command (without the leading ``curl``) as a CurlRequest.

    ``$NAME`` / ``${NAME}`` in arguments take the run's variables (``$INGRESS_GATEWAY_IP``). Flags that
    would change what is being verified (``-k``, ``-L``, ...) are refused rather than ignored.
    """
    method: str | None = None
    head = False
    headers: list[tuple[str, str]] = []
    data: str | None = None
    files: dict[str, str] = {}
    resolve: list[str] = []
    url: str | None = None
    words = [_substitute(a, variables) for a in args]
    index = 0
    while index < len(words):
        word = words[index]
        if word in _CURL_FLAGS_WITH_VALUE:
            if index + 1 >= len(words):
                raise ScenarioError(f"curl {word} needs a value")
            value = words[index + 1]
            kind = _CURL_FLAGS_WITH_VALUE[word]
            if kind == "header":
                name, sep, rest = value.partition(":")
                if not sep:
                    raise ScenarioError(f"curl header {value!r} lacks ':'")
                headers.append((name.strip().lower(), rest.strip()))
            elif kind == "method":
                method = value.upper()
            elif kind == "data":
                data = value
            elif kind in ("cacert", "cert", "key"):
                files[kind] = value
            elif kind == "resolve":
                resolve.append(value)
            index += 2
            continue
        if (
            word.startswith("-")
            and not word.startswith("--")
            and len(word) > 1
            and set(word[1:]) <= _CURL_SHORT_SWITCHES
        ):
            head = head or "I" in word
            index += 1
            continue
        if word.startswith("-"):
            raise ScenarioError(f"curl option {word!r} is not supported by the harness's probes")
        if url is not None:
            raise ScenarioError(f"curl command has two URLs: {url!r} and {word!r}")
        url = word
        index += 1
    if url is None:
        raise ScenarioError("curl command has no URL")
    if method is None:
        method = "HEAD" if head else ("POST" if data is not None else "GET")
    try:
        return CurlRequest(
            url=url, method=method, headers=tuple(headers), data=data, cacert=files.get("cacert"),
            cert=files.get("cert"), key=files.get("key"), resolve=tuple(resolve),
        )  # fmt: skip
    except ValueError as exc:
        raise ScenarioError(f"curl {' '.join(args)}: {exc}") from None


def _substitute(word: str, variables: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise ScenarioError(f"no value for ${name} in curl argument {word!r}")
        return variables[name]

    return _PLACEHOLDER.sub(value, word)


def _response_expectation(
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
        with evidence.step(what):
            step._record("wait", what=what, client=workload.ref, container=SIDECAR_CONTAINER)
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
        return self._run(Until.CONVERGES, _response_expectation(outcome, **response))

    def is_denied(self, outcome: Outcome | AnyOutcome | AnyHttp | NotOutcome, **response: Any) -> Observation:
        """Negative check: the request is denied this way, then the denial holds."""
        return self._run(Until.HOLDS, _response_expectation(outcome, **response))

    def stays(self, outcome: Outcome | AnyOutcome | AnyHttp | NotOutcome, **response: Any) -> Observation:
        """Like ``is_denied`` for an outcome that is not a denial as such (e.g. ``~http(301)``)."""
        return self._run(Until.HOLDS, _response_expectation(outcome, **response))

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
        with evidence.step(f"{workload.ref}: {self.documented} {verb} {expectation}"):
            fields: dict[str, Any] = {
                "probe": probe_id,
                "client": workload.ref,
                "request": _request_record(request, self.documented),
                "expect": expectation_dict(expectation),
                "until": until.value,
            }
            if control:
                fields["control"] = True
            step._record("probe", **fields)
            observation = runtime.probe(probe_id, workload, request, expectation, until, step.changed_at)
            evidence.attach_text(probe_transcript(observation, self.documented), f"{probe_id}: {self.documented}")
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


# -------------------------------------------------------------------------------------------- proxies


class Proxy:
    """A proxy whose access log the checks read."""

    def __init__(self, step: Step, source: LogSource) -> None:
        self._step = step
        self.source = source
        step.run.proxies.setdefault(f"{source.kind.value}:{source.workload}", source)

    def log_for(self, observation: Observation, *, sni: str | None = None, by_time: bool = False) -> LogAssertion:
        """The access-log entry of this request: by its correlation token; for a TLS/TCP connection (whose
        line carries no user agent) by its time window and SNI, or by its time window alone (``by_time``,
        for a connection the proxy refused before reading an SNI), the fields then telling entries apart."""
        if sni and by_time:
            raise ScenarioError("log_for: give sni or by_time, not both")
        return LogAssertion(self._step, self.source, observation, LogLookup(sni, by_time))

    def no_log_for(self, observation: Observation) -> None:
        raise ScenarioError(
            f"an absence in the {self.source.kind.value} log needs a positive control, and the harness has none "
            "for this proxy"
        )


class LogAssertion:
    def __init__(self, step: Step, source: LogSource, observation: Observation, lookup: LogLookup) -> None:
        self._step = step
        self._source = source
        self._observation = observation
        self._lookup = lookup

    def has(self, **fields: FieldMatcher | str | int) -> AccessLogEntry | None:
        """The entry exists and matches every field (plain values match exactly)."""
        spec: FieldSpec = dict(fields)
        expectation = LogExpectation(spec)
        compiled = compile_spec(spec)
        with evidence.step(f"{self._source.kind.value} {self._source.workload} logs {self._observation.probe_id}: "
                         f"{expectation}"):  # fmt: skip
            record: dict[str, Any] = {
                "probe": self._observation.probe_id,
                "proxy": self._source.record(),
                "present": True,
                "fields": {name: matcher_dict(m) for name, m in compiled.items()},
            }
            record.update(self._lookup.record())
            self._step._record("log", **record)
            entry = self._step.runtime.await_log_entry(self._source, self._observation, expectation, self._lookup)
            if entry is not None:
                evidence.attach_json(entry.line or entry.summary(), "access-log entry")
            correlated = self._step.runtime.log_correlation(self._observation, self._source)
            if correlated is not None:
                self._step.run.details.setdefault("logCorrelation", []).append(
                    {"probe": self._observation.probe_id, "proxy": self._source.workload, "by": correlated}
                )
        return entry


class EgressGateway(Proxy):
    """The egress gateway: its access log, and what the documented configuration assumes of it."""

    #: The positive control of a no-entry check: a harness-owned gateway server that answers 204 itself.
    CONTROL_MANIFEST = "harness/egress-gateway-log-control.yaml"
    CONTROL_HOST = "log-control.egress-conformance.invalid"

    def __init__(self, step: Step, info: EgressGatewayInfo) -> None:
        super().__init__(step, info.log_source())
        self.info = info

    def no_log_for(self, observation: Observation) -> None:
        """No entry for this request — proven against a control request through the same gateway, sent
        after it, whose entry must appear first (Envoy flushes its access log in order, with a delay)."""
        step = self._step
        with evidence.step(f"egress gateway has no entry for {observation.probe_id} (positive control)"):
            step.apply(self.CONTROL_MANIFEST, adaptation="positive control for an absent access-log entry")
            control_client = Client(step, step.runtime.probe_client())
            control_request = control_client.curl("-s", "-H", f"host:{self.CONTROL_HOST}", f"http://{self.info.host}/")
            control = control_request._run(Until.CONVERGES, _response_expectation(http(204)), control=True)
            self.log_for(control).has(response_code=204, authority=self.CONTROL_HOST)
            step._record("log", probe=observation.probe_id, proxy=self.source.record(), present=False,
                         controlProbe=control.probe_id)  # fmt: skip
            entries = step.runtime.log_entries(self.source, observation, LogLookup())
            if entries:
                raise AssertionError(
                    f"the egress gateway logged {observation.probe_id} ({observation.client.ref}: "
                    f"{observation.request.display()}), which must not pass through it: {entries[0].summary()}"
                )


class Waypoint(Proxy):
    """An ambient waypoint, a Gateway API Gateway of class ``istio-waypoint``: the access log of its Envoy.

    Istio deploys a waypoint's pods itself when the Gateway is applied (a check's step creates it), with
    the label :data:`GATEWAY_NAME_LABEL` and the Envoy in container ``istio-proxy``; the log is read from
    every pod with that label in the Gateway's namespace.
    """

    #: Set by Istio on every pod it deploys for a Gateway API gateway, waypoints included.
    GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"

    def __init__(self, step: Step, namespace: str, name: str) -> None:
        selector = f"{self.GATEWAY_NAME_LABEL}={name}"
        super().__init__(step, LogSource(ProxyKind.WAYPOINT, f"{namespace}/{name}", namespace, selector))


def describe_action(action: Mapping[str, Any], placeholders: Mapping[str, str] | None = None) -> str:
    """One line per action, for the plan's printout; ``placeholders`` name the values a plan invents (its
    addresses), so the printout never shows them as facts."""
    names = placeholders or {}

    def named(text: str) -> str:
        for value, name in sorted(names.items(), key=lambda item: -len(item[0])):
            text = re.sub(rf"(?<![\d.]){re.escape(value)}(?![\d])", name, text)
        return text

    def shown(matcher: Mapping[str, Any]) -> str:
        if "portOf" in matcher:
            return f"*:{matcher['portOf']}"
        if "hostOf" in matcher:
            return named(str(matcher["hostOf"]))
        return named(str(next(iter(matcher.values()))))

    kind = action["type"]
    if kind == "mesh":
        return f"set mesh outboundTrafficPolicy {action['outboundTrafficPolicy']}"
    if kind == "apply":
        objects = ", ".join(
            f"{r['kind']} {r['metadata'].get('namespace', '')}/{r['metadata']['name']}".replace(" /", " ")
            for r in action["resources"]
        )
        note = f" [adaptation: {action['adaptation']}]" if action.get("adaptation") else ""
        return f"apply {', '.join(action['sources'])}: {objects}{note}"
    if kind == "delete":
        objects = ", ".join(f"{r['kind']} {r.get('namespace', '')}/{r['name']}".replace(" /", " ")
                            for r in action["resources"])  # fmt: skip
        return ("clean up: delete " if action.get("cleanup") else "delete ") + objects
    if kind == "wait":
        return f"wait for {action['what']}"
    if kind == "probe":
        until = "converges to" if action["until"] == Until.CONVERGES.value else "is denied and holds"
        command = named(action["request"]["display"])
        return f"{action['probe']}: in {action['client']}: {command} {until} {action['expect']['outcome']}"
    if kind == "log":
        proxy = action["proxy"]
        if not action["present"]:
            control = action["controlProbe"]
            return f"{proxy['kind']} {proxy['workload']} has no entry for {action['probe']} (control {control})"
        fields = ", ".join(f"{k}={shown(v)}" for k, v in action["fields"].items())
        return f"{proxy['kind']} {proxy['workload']} logs {action['probe']} with {fields}"
    return str(dict(action))
