"""Field matchers on access log entries: ``match`` and ``LogExpectation`` say which fields differ from a spec."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from conformance.probe.accesslog import (
    ISTIO_JSON_FIELDS,
    AccessLogEntry,
    UnknownFieldError,
    parse_address,
    unknown_field_message,
)


class FieldMatcher(Protocol):
    def matches(self, value: Any, /) -> bool: ...

    def __str__(self) -> str: ...


@dataclass(frozen=True)
class Exact:
    value: Any

    def matches(self, value: Any, /) -> bool:
        return bool(value == self.value and type(value) is type(self.value))

    def __str__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class Prefix:
    prefix: str

    def matches(self, value: Any, /) -> bool:
        return isinstance(value, str) and value.startswith(self.prefix)

    def __str__(self) -> str:
        return f"starts with {self.prefix!r}"


@dataclass(frozen=True)
class Contains:
    part: str

    def matches(self, value: Any, /) -> bool:
        return isinstance(value, str) and self.part in value

    def __str__(self) -> str:
        return f"contains {self.part!r}"


@dataclass(frozen=True)
class HostOfAddress:
    """An address field whose host is ``host`` (``10.0.0.5`` matches ``10.0.0.5:443``)."""

    host: str

    def matches(self, value: Any, /) -> bool:
        address = parse_address(value) if isinstance(value, str) else None
        return address is not None and address.host == self.host

    def __str__(self) -> str:
        return f"host {self.host}"


@dataclass(frozen=True)
class PortOfAddress:
    """An address field whose port is ``port`` (``443`` matches ``10.0.0.5:443``)."""

    port: int

    def matches(self, value: Any, /) -> bool:
        address = parse_address(value) if isinstance(value, str) else None
        return address is not None and address.port == self.port

    def __str__(self) -> str:
        return f"port {self.port}"


@dataclass(frozen=True)
class Absent:
    """The field has no value (null, ``"-"`` or empty)."""

    def matches(self, value: Any, /) -> bool:
        return value is None

    def __str__(self) -> str:
        return "absent"


IsNull = Absent


@dataclass(frozen=True)
class Present:
    def matches(self, value: Any, /) -> bool:
        return value is not None

    def __str__(self) -> str:
        return "present"


@dataclass(frozen=True)
class Not:
    inner: FieldMatcher

    def matches(self, value: Any, /) -> bool:
        return not self.inner.matches(value)

    def __str__(self) -> str:
        return f"not {self.inner}"


FieldSpec = Mapping[str, "FieldMatcher | str | int"]


@dataclass(frozen=True)
class FieldMismatch:
    field: str
    expected: str
    actual: Any

    def __str__(self) -> str:
        return f"{self.field}: expected {self.expected}, got {self.actual!r}"


@dataclass(frozen=True)
class LogMatch:
    entry: AccessLogEntry | None
    mismatches: tuple[FieldMismatch, ...]

    @property
    def ok(self) -> bool:
        return self.entry is not None and not self.mismatches

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.entry is None:
            return "no access-log entry"
        if not self.mismatches:
            return f"matches: {self.entry.summary()}"
        return "; ".join(str(m) for m in self.mismatches) + f" (entry: {self.entry.summary()})"


def compile_spec(spec: FieldSpec) -> dict[str, FieldMatcher]:
    """Check field names and wrap plain values in Exact; unknown names raise UnknownFieldError."""
    compiled: dict[str, FieldMatcher] = {}
    for name, expected in spec.items():
        if name not in ISTIO_JSON_FIELDS:
            raise UnknownFieldError(unknown_field_message(name))
        if isinstance(expected, bool):
            raise TypeError(f"field {name!r}: use a matcher, not {expected!r}")
        if isinstance(expected, (str, int)):
            kind = ISTIO_JSON_FIELDS[name]
            if kind is datetime or not isinstance(expected, kind):
                raise TypeError(f"field {name!r} holds {kind.__name__} values, not {expected!r}")
            compiled[name] = Exact(expected)
        else:
            compiled[name] = expected
    return compiled


def match(entry: AccessLogEntry | None, spec: FieldSpec) -> LogMatch:
    """Compare an entry with ``{field: matcher or plain value}``; the result lists every mismatch."""
    compiled = compile_spec(spec)
    if entry is None:
        return LogMatch(None, ())
    mismatches = tuple(
        FieldMismatch(name, str(matcher), getattr(entry, name))
        for name, matcher in compiled.items()
        if not matcher.matches(getattr(entry, name))
    )
    return LogMatch(entry, mismatches)


class LogExpectation:
    """Field expectations on an entry, usable with ``conformance.core.expect.eventually``."""

    def __init__(self, spec: FieldSpec) -> None:
        self._compiled = compile_spec(spec)
        self.spec = dict(spec)

    def matches(self, entry: AccessLogEntry | None, /) -> bool:
        return match(entry, self._compiled).ok

    def __str__(self) -> str:
        return "entry with " + ", ".join(f"{n} {m}" for n, m in self._compiled.items())
