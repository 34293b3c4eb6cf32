"""What came back: curl's output parsed into a typed result, and the expectations a result is held to."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from conformance.probe.log_matchers import FieldMatcher
from conformance.probe.outcomes import AnyHttp, AnyOutcome, NotOutcome, Outcome, OutcomeKind, ProbeError

#: Largest response body kept in a ProbeResult; larger bodies are cut and flagged.
BODY_LIMIT = 64 * 1024
USER_AGENT_PREFIX = "egress-conformance/"
TOKEN_QUERY_PARAMETER = "egress_conformance_probe"
_WRITEOUT_MARKER_PREFIX = "~~egress-conformance-writeout:"

# --------------------------------------------------------------------------------------------------
# Headers


class Headers(Mapping[str, str]):
    """Case-insensitive multi-map of response headers, in arrival order.

    ``headers["server"]`` joins repeated values with ``", "``; ``get_all`` returns them apart.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs: tuple[tuple[str, str], ...] = tuple((n.strip(), v.strip()) for n, v in pairs)
        self._by_name: dict[str, list[str]] = {}
        for name, value in self._pairs:
            self._by_name.setdefault(name.lower(), []).append(value)

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        return self._pairs

    def get_all(self, name: str) -> list[str]:
        return list(self._by_name.get(name.lower(), ()))

    def names_with_prefix(self, prefix: str) -> list[str]:
        prefix = prefix.lower()
        return [n for n in self._by_name if n.startswith(prefix)]

    def __getitem__(self, name: str) -> str:
        return ", ".join(self._by_name[name.lower()])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_name

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._by_name == other._by_name
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self._pairs)!r})"


@dataclass(frozen=True)
class ProbeResult:
    outcome: Outcome
    #: HTTP status of the final response, even when curl failed after receiving it; None without one.
    status: int | None
    headers: Headers
    body: str
    body_truncated: bool
    #: curl's own exit code (from its write-out); the exec exit code is kept apart.
    curl_exit_code: int
    exec_exit_code: int
    curl_error: str | None
    stderr: str
    command: tuple[str, ...]
    display_command: str
    token: str
    namespace: str
    pod: str
    pod_ip: str | None
    started_at: datetime
    finished_at: datetime
    #: curl's write-out values (remote_ip, timings, ...).
    curl_info: Mapping[str, Any] = field(default_factory=dict)
    status_line: str | None = None

    @property
    def user_agent(self) -> str:
        return f"{USER_AGENT_PREFIX}{self.token}"

    @property
    def client_address(self) -> str | None:
        """``ip:port`` of curl's own end of the connection (its write-out's local_ip and local_port): a
        sidecar logs it as the downstream address of the request it captured."""
        ip, port = self.curl_info.get("local_ip"), self.curl_info.get("local_port")
        return f"{ip}:{port}" if ip and port else None

    def summary(self) -> str:
        detail = ""
        if self.outcome.kind is OutcomeKind.HTTP:
            server = self.headers.get("server")
            detail = f" server={server!r}" if server else ""
            snippet = self.body.strip().replace("\n", " ")[:60]
            detail += f" body={snippet!r}" if snippet else ""
        elif self.curl_error:
            detail = f" ({self.curl_error})"
        return (
            f"{self.outcome.describe()}{detail} [curl exit {self.curl_exit_code}, "
            f"{self.namespace}/{self.pod}, token {self.token}]"
        )

    def __str__(self) -> str:
        return self.summary()

    def transcript(self, body_limit: int = 4096) -> str:
        """Human-readable record of the exchange, for failure attachments."""
        lines = [
            f"$ kubectl -n {self.namespace} exec {self.pod} -- {self.display_command}",
            f"# run as: {' '.join(shell_quote(w) for w in self.command)}",
            f"# started {self.started_at.isoformat()} finished {self.finished_at.isoformat()}",
            f"# outcome {self.outcome.describe()}; curl exit {self.curl_exit_code}; exec exit {self.exec_exit_code}",
        ]
        if self.curl_info.get("remote_ip"):
            lines.append(f"# remote {self.curl_info.get('remote_ip')}:{self.curl_info.get('remote_port')}")
        if self.status_line:
            lines.append(self.status_line)
            lines += [f"{n}: {v}" for n, v in self.headers.pairs]
            lines.append("")
        if self.body:
            cut = self.body[:body_limit]
            lines.append(cut)
            if len(self.body) > body_limit or self.body_truncated:
                lines.append(f"[body cut at {len(cut)} characters]")
        if self.stderr.strip():
            lines.append(f"stderr: {self.stderr.strip()}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ParsedResponse:
    status_line: str | None
    headers: Headers
    body: str


def parse_response(payload: str) -> ParsedResponse:
    """Split curl's ``-i``/``-I`` output into the final response's status line, headers and body.

    Interim 1xx blocks (100 Continue, 103 Early Hints) precede the final response; they are skipped.
    """
    rest = payload
    status_line: str | None = None
    headers = Headers()
    while rest.startswith("HTTP/"):
        end, separator_length = _header_block_end(rest)
        block = rest[:end] if end >= 0 else rest
        rest = rest[end + separator_length :] if end >= 0 else ""
        lines = block.replace("\r\n", "\n").split("\n")
        status_line = lines[0].strip()
        headers = Headers(_header_pairs(lines[1:]))
        code = _status_of(status_line)
        if code is None or not 100 <= code < 200 or code == 101:
            break
    return ParsedResponse(status_line, headers, rest)


def _header_block_end(text: str) -> tuple[int, int]:
    crlf = text.find("\r\n\r\n")
    lf = text.find("\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        return crlf, 4
    return lf, 2 if lf >= 0 else 0


def _header_pairs(lines: Sequence[str]) -> Iterator[tuple[str, str]]:
    for line in lines:
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if sep:
            yield name, value


def _status_of(status_line: str) -> int | None:
    found = re.match(r"HTTP/[\d.]+\s+(\d{3})", status_line)
    return int(found.group(1)) if found else None


def parse_curl_output(stdout: str, token: str) -> tuple[dict[str, Any], ParsedResponse]:
    """Find the write-out after the marker; raise ProbeError when curl's output is not there."""
    marker = writeout_marker(token)
    at = stdout.rfind(marker)
    if at < 0:
        raise ProbeError("curl output lacks the write-out marker: the command did not run as curl")
    try:
        info = json.loads(stdout[at + len(marker) :].strip())
    except json.JSONDecodeError as exc:
        raise ProbeError(f"curl write-out is not JSON: {exc}") from exc
    if not isinstance(info, dict) or "exitcode" not in info:
        raise ProbeError("curl write-out lacks exitcode (curl older than 7.75?)")
    return info, parse_response(stdout[:at])


# --------------------------------------------------------------------------------------------------
# Response expectations


@dataclass(frozen=True)
class ResponseExpectation:
    """An outcome plus what the response must (not) carry; usable with ``expect.eventually``."""

    outcome: Outcome | AnyOutcome | AnyHttp | NotOutcome
    #: Header name -> exact value that one of the header's values must equal.
    header_equals: Mapping[str, str] = field(default_factory=dict)
    headers_present: tuple[str, ...] = ()
    #: No header whose name starts with one of these (e.g. ``x-envoy-``).
    header_prefixes_absent: tuple[str, ...] = ()
    body_contains: str | None = None
    #: The whole body, surrounding whitespace ignored (e.g. ``RBAC: access denied``).
    body_equals: str | None = None
    #: Top-level fields of a JSON body and how each must match (e.g. httpbin's ``url``).
    json_fields: Mapping[str, FieldMatcher] = field(default_factory=dict)

    def mismatches(self, result: ProbeResult) -> list[str]:
        problems: list[str] = []
        if not self.outcome.matches(result):
            problems.append(f"outcome {result.outcome} is not {self.outcome}")
        for name, value in self.header_equals.items():
            values = result.headers.get_all(name)
            if value not in values:
                problems.append(f"header {name}: {values or 'absent'} lacks {value!r}")
        problems += [f"header {n} absent" for n in self.headers_present if n not in result.headers]
        for prefix in self.header_prefixes_absent:
            present = result.headers.names_with_prefix(prefix)
            if present:
                problems.append(f"unexpected headers {present}")
        if self.body_contains is not None and self.body_contains not in result.body:
            problems.append(f"body lacks {self.body_contains!r}")
        if self.body_equals is not None and result.body.strip() != self.body_equals:
            problems.append(f"body is not {self.body_equals!r}")
        if self.json_fields:
            problems += _json_field_mismatches(result.body, self.json_fields)
        return problems

    def matches(self, result: ProbeResult, /) -> bool:
        return not self.mismatches(result)

    def __str__(self) -> str:
        parts = [str(self.outcome)]
        parts += [f"header {n}: {v}" for n, v in self.header_equals.items()]
        parts += [f"header {n} present" for n in self.headers_present]
        parts += [f"no {p}* headers" for p in self.header_prefixes_absent]
        if self.body_contains is not None:
            parts.append(f"body contains {self.body_contains!r}")
        if self.body_equals is not None:
            parts.append(f"body {self.body_equals!r}")
        parts += [f"JSON {name} {matcher}" for name, matcher in self.json_fields.items()]
        return ", ".join(parts)


def _json_field_mismatches(body: str, fields: Mapping[str, FieldMatcher]) -> list[str]:
    try:
        document = json.loads(body)
    except ValueError:
        return ["body is not JSON"]
    if not isinstance(document, dict):
        return ["body is not a JSON object"]
    return [
        f"JSON {name}: {document.get(name)!r} is not {matcher}"
        for name, matcher in fields.items()
        if not matcher.matches(document.get(name))
    ]


def shell_quote(word: str) -> str:
    if re.fullmatch(r"[\w@%+=:,./$-]+", word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def writeout_marker(token: str) -> str:
    return f"{_WRITEOUT_MARKER_PREFIX}{token}~~"
