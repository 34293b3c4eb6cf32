"""What a probe ended in, in the catalogue's vocabulary, and curl's exit codes behind it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

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


class HasOutcome(Protocol):
    """What a matcher can be asked about besides an Outcome itself (a ``ProbeResult``)."""

    @property
    def outcome(self) -> Outcome: ...


def _outcome_of(observed: HasOutcome | Outcome) -> Outcome:
    return observed if isinstance(observed, Outcome) else observed.outcome


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

    def matches(self, observed: HasOutcome | Outcome, /) -> bool:
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

    def matches(self, observed: HasOutcome | Outcome, /) -> bool:
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

    def matches(self, observed: HasOutcome | Outcome, /) -> bool:
        return _outcome_of(observed).kind is OutcomeKind.HTTP

    def __str__(self) -> str:
        return "http(any)"


@dataclass(frozen=True)
class NotOutcome:
    """Anything but the given outcome(s): ``not http(301)``."""

    excluded: Outcome | AnyOutcome | AnyHttp

    def matches(self, observed: HasOutcome | Outcome, /) -> bool:
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
