"""Istio's JSON access log: parse lines, find the entry of one probe, match fields.

Istio (``meshConfig.accessLogEncoding: JSON`` with an empty ``accessLogFormat``) writes one JSON object
per line with the 24 keys of ``EnvoyJSONLogFormatIstio`` (istio/istio
pilot/pkg/model/telemetry_logging.go). Envoy's JSON formatter keeps the type of a value produced by a
single command operator and writes ``null`` when the operator has no value (envoyproxy/envoy
source/common/formatter/substitution_formatter.cc, ``JsonFormatterImpl::formatSubstitution`` uses
``formatValueWithContext``): ``response_code``, ``bytes_*`` and ``duration`` are numbers, a TCP line has
``method``/``path``/``protocol`` null and ``response_code`` 0, ``response_flags`` is the string ``"-"``
when no flag is set, and ``upstream_service_time`` is a response header, hence a string. Older or
customised formats may render everything as strings with ``"-"`` for missing values; both forms are
accepted here (``"-"``/``""``/null -> None, numeric strings -> int).

Proxy logs mix access entries with Envoy/pilot-agent text lines and, for other components, structured
JSON that is not an access entry (ztunnel, istiod). Those are skipped, never errors.

Envoy flushes its access log file periodically, so an entry can appear a few seconds after the request:
poll lookups with ``conformance.core.expect.eventually``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

#: The keys of Istio's default JSON access log, in Istio's order, with the Python type of each.
ISTIO_JSON_FIELDS: Mapping[str, type] = {
    "start_time": datetime,
    "route_name": str,
    "method": str,
    "path": str,
    "protocol": str,
    "response_code": int,
    "response_flags": str,
    "response_code_details": str,
    "connection_termination_details": str,
    "bytes_received": int,
    "bytes_sent": int,
    "duration": int,
    "upstream_service_time": str,
    "x_forwarded_for": str,
    "user_agent": str,
    "request_id": str,
    "authority": str,
    "upstream_host": str,
    "upstream_cluster": str,
    "upstream_local_address": str,
    "downstream_local_address": str,
    "downstream_remote_address": str,
    "requested_server_name": str,
    "upstream_transport_failure_reason": str,
}

#: A JSON object is taken as an access entry when it has start_time and one of these.
_ACCESS_MARKER_KEYS = ("response_code", "upstream_cluster", "downstream_remote_address", "bytes_received")
_TEXT_ACCESS_LINE = re.compile(r'^\[\d{4}-\d{2}-\d{2}T[^\]]*\] "')
_START_TIME_KEY = '"start_time":'


class UnknownFieldError(KeyError):
    """A query named a field the access-log format does not have (e.g. ``authority_for``)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown access-log field"


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(value: str | None) -> Address | None:
    """``10.0.0.5:443``, ``[fd00::1]:443`` or ``envoy://connect_originate/10.0.0.5:15008`` -> Address."""
    if not value:
        return None
    text = value.rsplit("/", 1)[-1] if "://" in value else value
    found = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\s\[\]]+):(\d+)", text, re.ASCII)
    if not found:
        return None
    host = found.group(1) or found.group(3)
    port = found.group(2) or found.group(4)
    return Address(host, int(port))


def _normalise(name: str, value: Any) -> Any:
    """Typed value for one field: missing forms -> None, numbers -> int, start_time -> datetime."""
    if value is None or value == "-" or value == "":
        return None
    kind = ISTIO_JSON_FIELDS[name]
    if kind is int:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        # str.isdigit() is true for "²" and "٣", which int() refuses or reads: Envoy writes ASCII digits.
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
        return None
    if kind is datetime:
        return parse_start_time(value) if isinstance(value, str) else None
    return value if isinstance(value, str) else str(value)


def parse_start_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(frozen=True)
class AccessLogEntry:
    """One access-log line; every field typed, missing values None. ``raw`` keeps the JSON as logged."""

    start_time: datetime | None = None
    route_name: str | None = None
    method: str | None = None
    path: str | None = None
    protocol: str | None = None
    response_code: int | None = None
    response_flags: str | None = None
    response_code_details: str | None = None
    connection_termination_details: str | None = None
    bytes_received: int | None = None
    bytes_sent: int | None = None
    duration: int | None = None
    upstream_service_time: str | None = None
    x_forwarded_for: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    authority: str | None = None
    upstream_host: str | None = None
    upstream_cluster: str | None = None
    upstream_local_address: str | None = None
    downstream_local_address: str | None = None
    downstream_remote_address: str | None = None
    requested_server_name: str | None = None
    upstream_transport_failure_reason: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)
    line: str = field(default="", compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], line: str = "") -> AccessLogEntry:
        values = {name: _normalise(name, data.get(name)) for name in ISTIO_JSON_FIELDS}
        return cls(**values, raw=dict(data), line=line)

    @property
    def is_tcp(self) -> bool:
        """A connection-level line (TCP proxy / TLS passthrough): no HTTP method or protocol."""
        return self.method is None and self.protocol is None

    def value(self, name: str) -> Any:
        """Typed value of a field of the access-log format; unknown names raise UnknownFieldError."""
        if name not in ISTIO_JSON_FIELDS:
            raise UnknownFieldError(unknown_field_message(name))
        return getattr(self, name)

    @property
    def upstream_host_address(self) -> Address | None:
        return parse_address(self.upstream_host)

    @property
    def upstream_host_port(self) -> int | None:
        address = self.upstream_host_address
        return address.port if address else None

    @property
    def downstream_remote_ip(self) -> str | None:
        address = parse_address(self.downstream_remote_address)
        return address.host if address else None

    @property
    def downstream_local_ip(self) -> str | None:
        address = parse_address(self.downstream_local_address)
        return address.host if address else None

    @property
    def downstream_local_port(self) -> int | None:
        address = parse_address(self.downstream_local_address)
        return address.port if address else None

    def label(self) -> str:
        """Short grouping key (for the history of repeated lookups)."""
        return f"{self.response_code} {self.upstream_cluster or '-'}"

    def summary(self) -> str:
        if self.is_tcp:
            what = f"TCP sni={self.requested_server_name or '-'}"
        else:
            what = f"{self.method} {self.authority or '-'}{self.path or ''} -> {self.response_code}"
        return (
            f"[{self.start_time.isoformat() if self.start_time else '?'}] {what} "
            f"flags={self.response_flags or '-'} cluster={self.upstream_cluster or '-'} "
            f"upstream_host={self.upstream_host or '-'} from={self.downstream_remote_address or '-'}"
        )

    def __str__(self) -> str:
        return self.summary()


def unknown_field_message(name: str) -> str:
    hint = " (Istio's key is 'authority')" if name == "authority_for" else ""
    return f"{name!r} is not a field of Istio's JSON access log{hint}"


# --------------------------------------------------------------------------------------------------
# Parsing


def parse_line(line: str) -> AccessLogEntry | None:
    """The access entry on this line, or None for anything else (text logs, partial or foreign JSON)."""
    stripped = line.strip()
    if not stripped.startswith("{") or not stripped.endswith("}"):
        return None
    try:
        data = json.loads(stripped)
    except (ValueError, RecursionError):
        # RecursionError: a foreign line nested deeper than the JSON decoder's recursion limit.
        return None
    if not isinstance(data, dict) or "start_time" not in data:
        return None
    if not any(key in data for key in _ACCESS_MARKER_KEYS):
        return None
    return AccessLogEntry.from_json(data, stripped)


def parse_lines(text: str | Iterable[str]) -> Iterator[AccessLogEntry]:
    lines = text.splitlines() if isinstance(text, str) else text
    for line in lines:
        entry = parse_line(line)
        if entry is not None:
            yield entry


@dataclass(frozen=True)
class LogShape:
    """What a log text holds; explains an empty lookup (e.g. the proxy logs in TEXT encoding)."""

    lines: int
    json_entries: int
    text_access_lines: int

    def __str__(self) -> str:
        text = ""
        if self.text_access_lines:
            text = f", {self.text_access_lines} TEXT-format access lines (accessLogEncoding is not JSON?)"
        return f"{self.lines} lines, {self.json_entries} JSON access entries{text}"


def describe_log(text: str) -> LogShape:
    lines = text.splitlines()
    json_entries = sum(1 for line in lines if line.lstrip().startswith("{") and parse_line(line))
    text_lines = sum(1 for line in lines if _TEXT_ACCESS_LINE.match(line))
    return LogShape(len(lines), json_entries, text_lines)


# --------------------------------------------------------------------------------------------------
# Finding the entry of one probe


def _lines_containing(text: str, needle: str) -> Iterator[str]:
    """Lines holding ``needle``, found with str.find (no per-line work for the other lines)."""
    start = 0
    while True:
        at = text.find(needle, start)
        if at < 0:
            return
        line_start = text.rfind("\n", 0, at) + 1
        line_end = text.find("\n", at)
        if line_end < 0:
            line_end = len(text)
        yield text[line_start:line_end]
        start = line_end + 1


def entries_with_token(text: str, token: str) -> list[AccessLogEntry]:
    """Entries whose user_agent or path carries the probe's token, in log order."""
    if len(token) < 8:
        raise ValueError("a correlation token shorter than 8 characters is not unique enough")
    found: list[AccessLogEntry] = []
    for line in _lines_containing(text, token):
        entry = parse_line(line)
        if entry is None:
            continue
        if token in (entry.user_agent or "") or token in (entry.path or ""):
            found.append(entry)
    return found


def entries_in_window(
    text: str,
    started: datetime,
    finished: datetime,
    *,
    skew: timedelta = timedelta(seconds=5),
    requested_server_name: str | None = None,
    predicate: Callable[[AccessLogEntry], bool] | None = None,
) -> list[AccessLogEntry]:
    """Entries (typically TCP/TLS lines, which carry no token) that started inside the probe's window.

    The window is ``[started - skew, finished + skew]``; the skew absorbs clock differences between
    this machine and the node. Results are ordered by closeness to the probe's start, nearest first.
    """
    if started.tzinfo is None or finished.tzinfo is None:
        raise ValueError("window bounds must be timezone-aware (UTC)")
    low, high = started - skew, finished + skew
    # Lexical prefilter on the ISO second: both bounds in UTC, same format as Envoy's START_TIME.
    low_key = low.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    high_key = high.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    needle = f'"{requested_server_name}"' if requested_server_name else _START_TIME_KEY
    matched: list[AccessLogEntry] = []
    for line in _lines_containing(text, needle):
        key = _start_time_key(line)
        if key is not None and not low_key <= key <= high_key:
            continue
        entry = parse_line(line)
        if entry is None or entry.start_time is None or not low <= entry.start_time <= high:
            continue
        if requested_server_name and entry.requested_server_name != requested_server_name:
            continue
        if predicate is not None and not predicate(entry):
            continue
        matched.append(entry)
    matched.sort(key=lambda e: abs((e.start_time - started).total_seconds()) if e.start_time else 0.0)
    return matched


class ProbeRecord(Protocol):
    """What a lookup needs of a probe (``conformance.probe.curl.ProbeResult`` has it)."""

    @property
    def token(self) -> str: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def finished_at(self) -> datetime: ...


def entries_for_probe(
    text: str,
    probe: ProbeRecord,
    *,
    requested_server_name: str | None = None,
    skew: timedelta = timedelta(seconds=5),
) -> list[AccessLogEntry]:
    """The entries of one probe: by its token, or, for a TLS/TCP connection (whose line has no
    user agent), by its time window and SNI."""
    if requested_server_name is None:
        return entries_with_token(text, probe.token)
    return entries_in_window(
        text, probe.started_at, probe.finished_at, skew=skew, requested_server_name=requested_server_name
    )


def _start_time_key(line: str) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS`` of a UTC (``Z``) start_time, cut from the raw line without parsing it."""
    at = line.find(_START_TIME_KEY)
    if at < 0:
        return None
    opening = line.find('"', at + len(_START_TIME_KEY))
    closing = line.find('"', opening + 1) if opening >= 0 else -1
    if closing < 0:
        return None
    value = line[opening + 1 : closing]
    # Only UTC stamps compare lexically; any other form is decided after parsing.
    return value[:19] if value.endswith("Z") and len(value) >= 20 else None
