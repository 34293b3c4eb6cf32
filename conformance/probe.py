"""HTTP probes run with curl inside a pod, and their typed outcomes.

A probe is one ``curl`` executed in a workload container through the Kubernetes exec API (argv list, no
shell). The command keeps the shape the documentation shows (``curl -sI http://aliyun.com``,
``curl -H host:test.com $IP/status/418``) and adds what makes the result parseable from one exec:

* ``-i`` (or ``-I`` for HEAD) so the response headers precede the body on stdout;
* ``-w <marker>%{json}``: after the transfer curl appends a unique marker and a JSON object with its own
  exit code, ``http_code``, error message and timings. curl writes it even when the transfer fails
  (exit 6/7/28/35/...), so one parse covers every outcome. The marker must not begin with ``@``: curl
  reads the format from a file then. (``%{header_json}`` is not used: curl 7.88 drops headers from it.)
* a correlation token per probe, sent as ``User-Agent: egress-conformance/<token>`` (Istio's JSON access
  log has ``user_agent``) and optionally as a query parameter.

Redirects are never followed: several checks expect the origin's 301 itself.

curl exit codes (libcurl-errors): 1 unsupported protocol (for an http(s) URL: the reply is not HTTP,
"Received HTTP/0.9 when not allowed"), 6 couldn't resolve host, 7 couldn't connect, 8 weird server reply,
28 operation timed out, 35 TLS handshake failed, 52 empty reply, 55 send failed, 56 failure receiving data
(connection reset), 60 peer certificate cannot be authenticated, 47 too many redirects.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from conformance.accesslog import FieldMatcher
from conformance.kube import ExecResult, PodInfo
from conformance.timeouts import Timeouts

#: Largest response body kept in a ProbeResult; larger bodies are cut and flagged.
BODY_LIMIT = 64 * 1024
USER_AGENT_PREFIX = "egress-conformance/"
TOKEN_QUERY_PARAMETER = "egress_conformance_probe"
_WRITEOUT_MARKER_PREFIX = "~~egress-conformance-writeout:"

CURL_EXIT_DESCRIPTIONS: Mapping[int, str] = {
    1: "unsupported protocol",
    2: "failed to initialize",
    3: "URL malformed",
    4: "feature not built in",
    5: "couldn't resolve proxy",
    6: "couldn't resolve host",
    7: "couldn't connect to server",
    16: "HTTP/2 framing layer error",
    18: "partial file (transfer shorter than expected)",
    22: "HTTP error returned (--fail)",
    23: "write error",
    26: "read error",
    27: "out of memory",
    28: "operation timed out",
    35: "TLS/SSL connect error",
    43: "internal error",
    47: "too many redirects",
    52: "empty reply from server",
    55: "failed sending network data",
    56: "failure receiving network data",
    58: "problem with the local client certificate",
    60: "peer certificate cannot be authenticated with known CA certificates",
    77: "problem reading the CA certificate file",
    92: "HTTP/2 stream error",
}


#: Exit codes that mean the probe itself is broken (bad URL or option, unreadable local certificate or CA
#: file), never a network result: raised as ProbeError so that a negative check cannot pass on them.
#: Exit 1 is not among them: the URL's scheme is always http or https (CurlRequest checks it), so for curl
#: it means the peer's reply was not HTTP.
LOCAL_FAILURE_EXIT_CODES = frozenset({2, 3, 4, 26, 27, 43, 58, 77})

#: The URL schemes a probe speaks; a URL without one is plain HTTP, as for curl.
SCHEMES = ("http", "https")


class ProbeError(RuntimeError):
    """The probe itself could not run or its output is not curl's (never a network outcome)."""


# --------------------------------------------------------------------------------------------------
# Outcomes


class OutcomeKind(Enum):
    HTTP = "http"
    #: Over TLS: the connection failed or was dropped (closed or reset) before any HTTP response.
    TLS_RESET = "tls-reset"
    #: Over plain HTTP: the connection was dropped (closed or reset) before any HTTP response.
    CONN_RESET = "conn-reset"
    CONN_REFUSED = "conn-refused"
    TIMEOUT = "timeout"
    DNS_FAIL = "dns-fail"
    #: The peer answered, but not in HTTP (a banner, a TLS alert on a plain port, a malformed status line).
    NON_HTTP_REPLY = "non-http-reply"
    OTHER = "exit"


def _outcome_of(observed: ProbeResult | Outcome) -> Outcome:
    return observed.outcome if isinstance(observed, ProbeResult) else observed


@dataclass(frozen=True)
class Outcome:
    """What one request ended in, in the catalogue's vocabulary (``http(301)``, ``tls-reset``, ...).

    Only the HTTP status (for HTTP) and the curl exit code (for OTHER) are part of the identity: a
    ``tls-reset`` from exit 35 equals one from exit 56.
    """

    kind: OutcomeKind
    status: int | None = None
    exit_code: int | None = None

    def __post_init__(self) -> None:
        if self.kind is OutcomeKind.HTTP:
            if self.status is None or not 100 <= self.status <= 599:
                raise ValueError(f"an HTTP outcome needs a status code 100-599, got {self.status!r}")
        elif self.status is not None:
            raise ValueError(f"{self.kind.value} carries no HTTP status")
        if self.kind is OutcomeKind.OTHER:
            if self.exit_code is None:
                raise ValueError("an OTHER outcome keeps the curl exit code")
        elif self.exit_code is not None:
            raise ValueError(f"{self.kind.value} does not keep an exit code")

    @classmethod
    def http(cls, status: int) -> Outcome:
        return cls(OutcomeKind.HTTP, status=status)

    @classmethod
    def other(cls, exit_code: int) -> Outcome:
        return cls(OutcomeKind.OTHER, exit_code=exit_code)

    @classmethod
    def parse(cls, text: str) -> Outcome:
        """Inverse of ``str()``: ``http(301)``, ``tls-reset``, ``conn-refused``, ``exit(47)``, ..."""
        text = text.strip()
        found = re.fullmatch(r"(http|exit)\((\d+)\)", text)
        if found:
            number = int(found.group(2))
            return cls.http(number) if found.group(1) == "http" else cls.other(number)
        for kind in OutcomeKind:
            if kind not in (OutcomeKind.HTTP, OutcomeKind.OTHER) and kind.value == text:
                return cls(kind)
        raise ValueError(f"not an outcome: {text!r}")

    def matches(self, observed: ProbeResult | Outcome, /) -> bool:
        return _outcome_of(observed) == self

    def __or__(self, other: Outcome | AnyOutcome) -> AnyOutcome:
        return AnyOutcome((self,)) | other

    def __invert__(self) -> NotOutcome:
        return NotOutcome(self)

    def __str__(self) -> str:
        if self.kind is OutcomeKind.HTTP:
            return f"http({self.status})"
        if self.kind is OutcomeKind.OTHER:
            return f"exit({self.exit_code})"
        return str(self.kind.value)

    def describe(self) -> str:
        """Like ``str()``, with the meaning of an unmapped curl exit code."""
        if self.kind is OutcomeKind.OTHER and self.exit_code is not None:
            meaning = CURL_EXIT_DESCRIPTIONS.get(self.exit_code, "unknown curl error")
            return f"{self} ({meaning})"
        return str(self)


def http(status: int) -> Outcome:
    return Outcome.http(status)


TLS_RESET = Outcome(OutcomeKind.TLS_RESET)
CONN_RESET = Outcome(OutcomeKind.CONN_RESET)
CONN_REFUSED = Outcome(OutcomeKind.CONN_REFUSED)
TIMEOUT = Outcome(OutcomeKind.TIMEOUT)
DNS_FAIL = Outcome(OutcomeKind.DNS_FAIL)
NON_HTTP_REPLY = Outcome(OutcomeKind.NON_HTTP_REPLY)


@dataclass(frozen=True)
class AnyOutcome:
    """One of several outcomes: ``TIMEOUT | CONN_REFUSED`` renders ``timeout or conn-refused``."""

    options: tuple[Outcome, ...]

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError("AnyOutcome needs at least one outcome")

    def matches(self, observed: ProbeResult | Outcome, /) -> bool:
        return _outcome_of(observed) in self.options

    def __or__(self, other: Outcome | AnyOutcome) -> AnyOutcome:
        extra = other.options if isinstance(other, AnyOutcome) else (other,)
        return AnyOutcome(self.options + tuple(o for o in extra if o not in self.options))

    def __invert__(self) -> NotOutcome:
        return NotOutcome(self)

    def __str__(self) -> str:
        return " or ".join(str(o) for o in self.options)


@dataclass(frozen=True)
class AnyHttp:
    """Any HTTP response, whatever its status."""

    def matches(self, observed: ProbeResult | Outcome, /) -> bool:
        return _outcome_of(observed).kind is OutcomeKind.HTTP

    def __str__(self) -> str:
        return "http(any)"


@dataclass(frozen=True)
class NotOutcome:
    """Anything but the given outcome(s): ``not http(301)``."""

    excluded: Outcome | AnyOutcome | AnyHttp

    def matches(self, observed: ProbeResult | Outcome, /) -> bool:
        return not self.excluded.matches(observed)

    def __str__(self) -> str:
        return f"not {self.excluded}"


def parse_expected(text: str) -> Outcome | AnyOutcome | NotOutcome:
    """``http(301)``, ``timeout or conn-refused``, ``not http(301)`` -> a matcher."""
    text = text.strip()
    if text.startswith("not "):
        inner = parse_expected(text[4:])
        if isinstance(inner, NotOutcome):
            raise ValueError(f"double negation in {text!r}")
        return NotOutcome(inner)
    parts = [Outcome.parse(p) for p in text.split(" or ")]
    return parts[0] if len(parts) == 1 else AnyOutcome(tuple(parts))


def outcome_from_curl(scheme: str, exit_code: int, http_code: int) -> Outcome:
    """Map the URL's scheme, curl's exit code and whether an HTTP response arrived to an outcome.

    One behaviour of the peer gives one outcome, whichever exit code the timing produces. A peer that
    drops the connection before answering (closes it, resets it, or refuses the TLS handshake) makes curl
    exit 35, 52, 55 or 56 depending on when its FIN or RST lands (a close with the request unread in the
    kernel sends RST; with TLS 1.3 a refused client certificate shows after the client's handshake is done):
    that is ``tls-reset`` over https and ``conn-reset`` over http. A reply that is not HTTP (exit 1, "HTTP/0.9
    when not allowed", or 8, weird server reply) is ``non-http-reply``. A failure after a response arrived
    (a stalled or cut body) keeps its exit code; the status stays in ProbeResult.status.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"probes speak {' or '.join(SCHEMES)}, not {scheme!r}")
    got_response = http_code > 0
    if exit_code == 0:
        if not got_response:
            raise ProbeError("curl exited 0 without an HTTP status")
        return Outcome.http(http_code)
    if got_response:
        return Outcome.other(exit_code)
    if exit_code in (35, 52, 55, 56) and scheme == "https":
        return TLS_RESET
    if exit_code in (52, 55, 56) and scheme == "http":
        return CONN_RESET
    mapped = {
        1: NON_HTTP_REPLY,
        6: DNS_FAIL,
        7: CONN_REFUSED,
        8: NON_HTTP_REPLY,
        28: TIMEOUT,
    }
    return mapped.get(exit_code) or Outcome.other(exit_code)


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


# --------------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True)
class CurlRequest:
    """One request, rendered as the documented curl command plus what makes it parseable."""

    url: str
    method: str = "GET"
    #: Request headers, e.g. ``(("host", "test.com"),)``.
    headers: tuple[tuple[str, str], ...] = ()
    data: str | None = None
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    #: ``--resolve host:port:address`` entries.
    resolve: tuple[str, ...] = ()
    #: curl ``--max-time``; None takes ``Timeouts.request``.
    max_time: float | None = None
    connect_timeout: float | None = None
    #: Also send the token as a query parameter (it then shows in the access log's ``path``).
    token_in_query: bool = False

    def __post_init__(self) -> None:
        if not self.url or self.url.startswith("-"):
            raise ValueError(f"not a URL: {self.url!r}")
        if self.method != self.method.upper() or not self.method.isalpha():
            raise ValueError(f"HTTP method must be an upper-case token, got {self.method!r}")
        if self.data is not None and self.method in ("GET", "HEAD"):
            raise ValueError(f"curl --data sends a body; use a method that carries one, not {self.method}")
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs both cert and key")
        for name, _ in self.headers:
            if not name or ":" in name or any(c.isspace() for c in name):
                raise ValueError(f"bad header name {name!r}")
        if self.scheme not in SCHEMES:
            raise ValueError(f"a probe URL is http:// or https://, not {self.url!r}")

    @property
    def scheme(self) -> str:
        """``http`` or ``https``; a URL without a scheme is plain HTTP, as curl takes it."""
        scheme, separator, _ = self.url.partition("://")
        return scheme.lower() if separator else "http"

    def _shared_options(self) -> list[str]:
        options: list[str] = []
        if self.method not in ("GET", "HEAD"):
            # HEAD goes through -I: with -X HEAD curl would wait for a body that never comes.
            options += ["-X", self.method]
        if self.data is not None:
            # --data-raw: with --data a body starting with '@' would name a file to send.
            options += ["--data-raw", self.data]
        for name, value in self.headers:
            options += ["-H", f"{name}:{value}"]
        if self.cacert:
            options += ["--cacert", self.cacert]
        if self.cert and self.key:
            options += ["--cert", self.cert, "--key", self.key]
        for entry in self.resolve:
            options += ["--resolve", entry]
        return options

    def display(self) -> str:
        """The command as the documentation would write it (for reports and failure messages)."""
        words = ["curl", "-sI" if self.method == "HEAD" else "-s", *self._shared_options(), self.url]
        return " ".join(_shell_quote(w) for w in words)

    def argv(self, token: str, max_time: float) -> list[str]:
        """The exact command run in the pod."""
        if not re.fullmatch(r"[0-9a-zA-Z_-]+", token):
            raise ValueError(f"token must be URL- and header-safe, got {token!r}")
        argv = ["curl", "-sS", "-I" if self.method == "HEAD" else "-i", *self._shared_options()]
        argv += ["--max-time", _seconds(max_time)]
        if self.connect_timeout is not None:
            argv += ["--connect-timeout", _seconds(self.connect_timeout)]
        argv += ["-A", f"{USER_AGENT_PREFIX}{token}", "-w", writeout_marker(token) + "%{json}\\n"]
        argv.append(self.url_with_token(token) if self.token_in_query else self.url)
        return argv

    def url_with_token(self, token: str) -> str:
        parts = urlsplit(self.url if "://" in self.url else f"http://{self.url}")
        query = f"{parts.query}&" if parts.query else ""
        with_token = urlunsplit(parts._replace(query=f"{query}{TOKEN_QUERY_PARAMETER}={token}"))
        return with_token if "://" in self.url else with_token.removeprefix("http://")


def _seconds(value: float) -> str:
    if value <= 0:
        raise ValueError(f"a curl time limit must be positive, got {value}")
    return f"{value:g}"


def _shell_quote(word: str) -> str:
    if re.fullmatch(r"[\w@%+=:,./$-]+", word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def writeout_marker(token: str) -> str:
    return f"{_WRITEOUT_MARKER_PREFIX}{token}~~"


def new_token() -> str:
    """A random correlation token: 16 hex digits."""
    return secrets.token_hex(8)


# --------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class PodTarget:
    """Where a probe runs: a pod by name, or the first ready pod behind a label selector."""

    namespace: str
    pod: str | None = None
    label_selector: str | None = None
    container: str | None = None

    def __post_init__(self) -> None:
        if (self.pod is None) == (self.label_selector is None):
            raise ValueError("give exactly one of pod or label_selector")

    def __str__(self) -> str:
        who = self.pod if self.pod is not None else f"[{self.label_selector}]"
        container = f" ({self.container})" if self.container else ""
        return f"{self.namespace}/{who}{container}"


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
            f"# run as: {' '.join(_shell_quote(w) for w in self.command)}",
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


# --------------------------------------------------------------------------------------------------
# Prober


class ExecKube(Protocol):
    """The part of ``conformance.kube.Kube`` a Prober needs."""

    def exec(
        self, namespace: str, pod: str, command: list[str], container: str | None, timeout: float
    ) -> ExecResult: ...

    def pods(self, namespace: str, label_selector: str) -> list[PodInfo]: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Prober:
    """Runs CurlRequests in pods and turns curl's output into ProbeResults.

    Network results are outcomes, never exceptions. ``ProbeError`` (no ready pod, output that is not
    curl's) and the exec's own ``KubeError`` are raised: callers polling through a rollout may pass them
    as ``tolerated`` to ``conformance.expect``.
    """

    #: Extra time the exec gets beyond curl's own --max-time (API round trip, container start of exec).
    EXEC_MARGIN_SECONDS = 10.0

    def __init__(
        self,
        kube: ExecKube,
        timeouts: Timeouts,
        *,
        token_factory: Callable[[], str] = new_token,
        now: Callable[[], datetime] = _utc_now,
        body_limit: int = BODY_LIMIT,
    ) -> None:
        self._kube = kube
        self._timeouts = timeouts
        self._token_factory = token_factory
        self._now = now
        self._body_limit = body_limit

    def resolve_pod(self, target: PodTarget) -> tuple[str, str | None]:
        """Pod name (and IP when known) for a target; a selector picks the first ready pod by name."""
        if target.pod is not None:
            return target.pod, None
        assert target.label_selector is not None
        pods = self._kube.pods(target.namespace, target.label_selector)
        ready = sorted((p for p in pods if p.ready and p.phase == "Running"), key=lambda p: p.name)
        if not ready:
            seen = ", ".join(f"{p.name} ({p.phase}, ready={p.ready})" for p in pods) or "none"
            raise ProbeError(f"no ready pod for {target}; pods seen: {seen}")
        return ready[0].name, ready[0].ip

    def probe(self, target: PodTarget, request: CurlRequest) -> ProbeResult:
        pod, pod_ip = self.resolve_pod(target)
        token = self._token_factory()
        max_time = request.max_time if request.max_time is not None else self._timeouts.request
        argv = request.argv(token, max_time)
        started = self._now()
        executed = self._kube.exec(target.namespace, pod, argv, target.container, max_time + self.EXEC_MARGIN_SECONDS)
        finished = self._now()
        try:
            info, response = parse_curl_output(executed.stdout, token)
        except ProbeError as exc:
            raise ProbeError(
                f"{exc}; pod {target.namespace}/{pod}, exec exit {executed.exit_code}, "
                f"stderr: {executed.stderr.strip()[:500]!r}, stdout: {executed.stdout[:500]!r}"
            ) from exc
        curl_exit = int(info["exitcode"])
        if curl_exit in LOCAL_FAILURE_EXIT_CODES:
            raise ProbeError(
                f"curl could not make the request: exit {curl_exit} "
                f"({CURL_EXIT_DESCRIPTIONS.get(curl_exit, 'unknown')}): {info.get('errormsg')}; "
                f"command: {request.display()} in {target.namespace}/{pod}"
            )
        http_code = int(info.get("http_code") or info.get("response_code") or 0)
        body = response.body
        truncated = len(body) > self._body_limit
        return ProbeResult(
            outcome=outcome_from_curl(request.scheme, curl_exit, http_code),
            status=http_code or None,
            headers=response.headers,
            body=body[: self._body_limit],
            body_truncated=truncated,
            curl_exit_code=curl_exit,
            exec_exit_code=executed.exit_code,
            curl_error=info.get("errormsg") or None,
            stderr=executed.stderr,
            command=tuple(argv),
            display_command=request.display(),
            token=token,
            namespace=target.namespace,
            pod=pod,
            pod_ip=pod_ip,
            started_at=started,
            finished_at=finished,
            curl_info=info,
            status_line=response.status_line,
        )
