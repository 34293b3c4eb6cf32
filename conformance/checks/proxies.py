"""Proxies whose access log a check reads, and the matchers of its fields."""

from __future__ import annotations

from typing import Any

from conformance.checks.errors import ScenarioError
from conformance.checks.step import Step
from conformance.engine.actions import matcher_dict
from conformance.engine.runtime import LogLookup, LogSource, Observation
from conformance.probe.accesslog import AccessLogEntry
from conformance.probe.log_matchers import (
    Absent,
    FieldMatcher,
    FieldSpec,
    HostOfAddress,
    LogExpectation,
    PortOfAddress,
    Prefix,
    compile_spec,
)


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
        record: dict[str, Any] = {
            "probe": self._observation.probe_id,
            "proxy": self._source.record(),
            "present": True,
            "fields": {name: matcher_dict(m) for name, m in compiled.items()},
            **self._lookup.record(),
        }
        title = f"{self._source.kind.value} {self._source.workload} logs {self._observation.probe_id}: {expectation}"
        with self._step.action("log", title, **record) as attach:
            entry = self._step.runtime.await_log_entry(self._source, self._observation, expectation, self._lookup)
            if entry is not None:
                attach.json(entry.line or entry.summary(), "access-log entry")
            correlated = self._step.runtime.log_correlation(self._observation, self._source)
            if correlated is not None:
                self._step.run.details.setdefault("logCorrelation", []).append(
                    {"probe": self._observation.probe_id, "proxy": self._source.workload, "by": correlated}
                )
        return entry
