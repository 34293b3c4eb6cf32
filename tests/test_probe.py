"""Probes: command shapes, parsing of curl output, exit-code mapping, Prober against kube stand-ins.

The canned outputs follow what curl prints with ``-i``/``-I`` and ``-w <marker>%{json}``; the
loopback tests at the end run the real curl of this machine (skipped when there is none) against a
local HTTP server through a stand-in whose exec runs the argv locally.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from conformance.core.timeouts import Timeouts
from conformance.kube.api import ExecResult, PodInfo
from conformance.probe.curl import CurlRequest, PodTarget, Prober
from conformance.probe.outcomes import (
    CONN_REFUSED,
    CONN_RESET,
    DNS_FAIL,
    NON_HTTP_REPLY,
    TIMEOUT,
    TLS_RESET,
    AnyHttp,
    AnyOutcome,
    NotOutcome,
    Outcome,
    OutcomeKind,
    ProbeError,
    http,
    outcome_from_curl,
    parse_expected,
)
from conformance.probe.responses import Headers, ProbeResult, ResponseExpectation, parse_response, writeout_marker
from conformance.world.pki import RunPKI

TIMEOUTS = Timeouts(request=8.0)
SLEEP = PodTarget("default", pod="sleep-5c4f8d9b7d-kq2xz", container="sleep")


def token_of(command: list[str]) -> str:
    agent = command[command.index("-A") + 1]
    assert agent.startswith("egress-conformance/")
    return agent.removeprefix("egress-conformance/")


def curl_stdout(command: list[str], payload: str, *, exitcode: int = 0, http_code: int = 0, error: str = "") -> str:
    """What curl writes to stdout for this command: response (if any), marker, write-out JSON."""
    info = {
        "exitcode": exitcode,
        "errormsg": error or None,
        "http_code": http_code,
        "response_code": http_code,
        "remote_ip": "10.96.120.11" if http_code else "",
        "remote_port": 80 if http_code else 0,
        "num_headers": payload.count("\r\n") - 1 if http_code else 0,
        "time_total": 0.004211,
        "curl_version": "libcurl/8.16.0 OpenSSL/3.5.2 zlib/1.3.1",
    }
    return f"{payload}{writeout_marker(token_of(command))}{json.dumps(info)}\n"


@dataclass
class ScriptedKube:
    """Kube stand-in: records exec calls and answers each from a script given the command."""

    answer: Callable[[list[str]], ExecResult]
    pod_list: list[PodInfo] = field(default_factory=list)
    calls: list[tuple[str, str, list[str], str | None, float]] = field(default_factory=list)

    def exec(self, namespace: str, pod: str, command: list[str], container: str | None, timeout: float) -> ExecResult:
        self.calls.append((namespace, pod, list(command), container, timeout))
        return self.answer(command)

    def pods(self, namespace: str, label_selector: str) -> list[PodInfo]:
        return [p for p in self.pod_list if p.namespace == namespace]


def responding(payload: str, http_code: int, exitcode: int = 0, error: str = "", stderr: str = "") -> ScriptedKube:
    return ScriptedKube(
        lambda cmd: ExecResult(
            curl_stdout(cmd, payload, exitcode=exitcode, http_code=http_code, error=error), stderr, exitcode
        )
    )


def fixed_clock() -> Callable[[], datetime]:
    moments = iter(datetime(2026, 11, 20, 10, 15, 3, tzinfo=UTC) + timedelta(milliseconds=50 * i) for i in range(100))
    return lambda: next(moments)


HEAD_301 = (
    "HTTP/1.1 301 Moved Permanently\r\n"
    "Server: Tengine\r\n"
    "Date: Fri, 20 Nov 2026 10:15:03 GMT\r\n"
    "Content-Type: text/html\r\n"
    "Content-Length: 239\r\n"
    "Connection: keep-alive\r\n"
    "Location: https://aliyun.com/\r\n"
    "\r\n"
)
RBAC_403 = (
    "HTTP/1.1 403 Forbidden\r\n"
    "content-length: 19\r\n"
    "content-type: text/plain\r\n"
    "date: Fri, 20 Nov 2026 10:15:09 GMT\r\n"
    "server: envoy\r\n"
    "x-envoy-upstream-service-time: 4\r\n"
    "\r\n"
    "RBAC: access denied"
)
TEAPOT_418 = (
    "HTTP/1.1 418 Unknown\r\n"
    "access-control-allow-credentials: true\r\n"
    "access-control-allow-origin: *\r\n"
    "x-more-info: http://tools.ietf.org/html/rfc2324\r\n"
    "date: Fri, 20 Nov 2026 10:15:12 GMT\r\n"
    "content-length: 135\r\n"
    "x-envoy-upstream-service-time: 3\r\n"
    "server: envoy\r\n"
    "\r\n"
    '\n    -=[ teapot ]=-\n\n       _...._\n     .\'  _ _ `.\n    | ."` ^ `". _,\n    \\_;`"---"`|//\n'
    '      |       ;/\n      \\_     _/\n        `"""`\n'
)
BLACKHOLE_502 = (
    "HTTP/1.1 502 Bad Gateway\r\ndate: Fri, 20 Nov 2026 10:10:41 GMT\r\nserver: envoy\r\ncontent-length: 0\r\n\r\n"
)


# --------------------------------------------------------------------------------------------------
# Outcomes


def test_outcome_vocabulary() -> None:
    assert str(http(301)) == "http(301)"
    assert [str(o) for o in (TLS_RESET, CONN_RESET, CONN_REFUSED, TIMEOUT, DNS_FAIL, NON_HTTP_REPLY)] == [
        "tls-reset",
        "conn-reset",
        "conn-refused",
        "timeout",
        "dns-fail",
        "non-http-reply",
    ]
    assert str(Outcome.other(60)) == "exit(60)"
    assert Outcome.other(60).describe() == (
        "exit(60) (peer certificate cannot be authenticated with known CA certificates)"
    )
    assert http(301) == Outcome(OutcomeKind.HTTP, status=301)
    assert http(301) != http(302)
    for text in ("http(418)", "tls-reset", "conn-reset", "conn-refused", "timeout", "dns-fail", "exit(47)"):
        assert str(Outcome.parse(text)) == text
    assert Outcome.parse("non-http-reply") == NON_HTTP_REPLY
    with pytest.raises(ValueError):
        Outcome.parse("empty-reply")


def test_outcome_validation() -> None:
    with pytest.raises(ValueError):
        Outcome(OutcomeKind.HTTP)
    with pytest.raises(ValueError):
        http(0)
    with pytest.raises(ValueError):
        Outcome(OutcomeKind.TIMEOUT, status=200)
    with pytest.raises(ValueError):
        Outcome(OutcomeKind.OTHER)
    with pytest.raises(ValueError):
        Outcome(OutcomeKind.TLS_RESET, exit_code=35)
    with pytest.raises(ValueError):
        Outcome.parse("connection refused")


def test_outcome_sets_and_negation() -> None:
    blocked = TIMEOUT | CONN_REFUSED
    assert isinstance(blocked, AnyOutcome)
    assert str(blocked) == "timeout or conn-refused"
    assert blocked.matches(CONN_REFUSED) and blocked.matches(TIMEOUT)
    assert not blocked.matches(http(301))
    assert str(blocked | TIMEOUT | DNS_FAIL) == "timeout or conn-refused or dns-fail"
    assert str(~http(301)) == "not http(301)"
    assert (~http(301)).matches(http(502)) and not (~http(301)).matches(http(301))
    assert AnyHttp().matches(http(204)) and not AnyHttp().matches(TLS_RESET)
    assert parse_expected("timeout or conn-refused") == blocked
    assert parse_expected("not http(301)") == NotOutcome(http(301))
    assert parse_expected("http(403)") == http(403)
    with pytest.raises(ValueError):
        parse_expected("not not timeout")


#: (scheme, curl exit code, HTTP response seen) -> outcome. Each row names the loopback peer behaviour
#: with which real curl produces it (test_real_curl_gives_the_tabled_outcome), or None when no loopback
#: peer makes this curl give it.
CLASSIFICATION: list[tuple[str, int, bool, Outcome, str | None]] = [
    ("http", 0, True, http(418), "answers-418"),
    ("https", 0, True, http(418), "answers-418"),
    ("http", 7, False, CONN_REFUSED, "closed-port"),
    ("https", 7, False, CONN_REFUSED, "closed-port"),
    ("http", 6, False, DNS_FAIL, "unresolvable-name"),
    ("http", 28, False, TIMEOUT, "never-answers"),
    ("https", 28, False, TIMEOUT, "never-answers"),
    # A failure after the response began keeps its exit code; the status stays in ProbeResult.status.
    ("http", 28, True, Outcome.other(28), "headers-then-stalled-body"),
    ("https", 28, True, Outcome.other(28), "headers-then-stalled-body"),
    ("http", 18, True, Outcome.other(18), "headers-then-cut-body"),
    ("http", 8, True, Outcome.other(8), "header-without-colon"),
    # The connection dropped before any response: conn-reset over http, tls-reset over https.
    ("http", 52, False, CONN_RESET, "reads-then-closes"),
    ("http", 56, False, CONN_RESET, "reads-then-resets"),
    ("http", 55, False, CONN_RESET, None),  # send failed: the peer reset while curl still sent
    ("https", 35, False, TLS_RESET, "plain-http-server"),
    ("https", 35, False, TLS_RESET, "tls1.2-requires-client-certificate"),
    ("https", 52, False, TLS_RESET, "reads-then-closes"),
    ("https", 56, False, TLS_RESET, "reads-then-resets"),
    ("https", 55, False, TLS_RESET, "tls1.3-requires-client-certificate"),
    ("https", 56, False, TLS_RESET, "tls1.3-requires-client-certificate"),
    # The peer answered, but not in HTTP ("Received HTTP/0.9 when not allowed"): a network result.
    ("http", 1, False, NON_HTTP_REPLY, "banner"),
    ("https", 1, False, NON_HTTP_REPLY, "banner"),
    ("http", 1, False, NON_HTTP_REPLY, "tls-alert-on-plain-port"),
    ("http", 1, False, NON_HTTP_REPLY, "unparseable-status-code"),
    ("https", 60, False, Outcome.other(60), "certificate-of-another-ca"),
]


@pytest.mark.parametrize(
    ("scheme", "exit_code", "response_seen", "expected"),
    [row[:4] for row in CLASSIFICATION],
    ids=[f"{row[0]}-{row[1]}-{'response' if row[2] else 'none'}-{row[4]}" for row in CLASSIFICATION],
)
def test_classification_table(scheme: str, exit_code: int, response_seen: bool, expected: Outcome) -> None:
    assert outcome_from_curl(scheme, exit_code, 418 if response_seen else 0) == expected


def test_only_http_and_https_are_classified() -> None:
    with pytest.raises(ValueError, match="not 'ftp'"):
        outcome_from_curl("ftp", 56, 0)
    with pytest.raises(ValueError, match="http:// or https://"):
        CurlRequest("ftp://aliyun.com/")
    assert CurlRequest("10.96.200.10/status/418").scheme == "http"
    assert CurlRequest("HTTPS://www.httpbin.org").scheme == "https"


def test_exit_zero_without_status_is_a_probe_error() -> None:
    with pytest.raises(ProbeError):
        outcome_from_curl("http", 0, 0)


# --------------------------------------------------------------------------------------------------
# Command shapes


def test_documented_head_shape() -> None:
    request = CurlRequest("http://aliyun.com", method="HEAD")
    assert request.display() == "curl -sI http://aliyun.com"
    argv = request.argv("0123456789abcdef", 8)
    assert argv[:3] == ["curl", "-sS", "-I"]
    assert argv[-1] == "http://aliyun.com"
    assert "-X" not in argv  # HEAD through -I: with -X HEAD curl would wait for a body
    assert argv[argv.index("--max-time") + 1] == "8"
    assert argv[argv.index("-A") + 1] == "egress-conformance/0123456789abcdef"
    writeout = argv[argv.index("-w") + 1]
    assert writeout == "~~egress-conformance-writeout:0123456789abcdef~~%{json}\\n"
    assert not writeout.startswith("@")  # curl would read the format from a file


def test_documented_host_header_shape() -> None:
    request = CurlRequest("10.96.200.10/status/418", headers=(("host", "test.com"),))
    assert request.display() == "curl -s -H host:test.com 10.96.200.10/status/418"
    argv = request.argv("0123456789abcdef", 5)
    assert argv[:3] == ["curl", "-sS", "-i"]
    assert argv[argv.index("-H") + 1] == "host:test.com"
    assert argv[-1] == "10.96.200.10/status/418"


def test_post_tls_and_resolve_options() -> None:
    request = CurlRequest(
        "https://www.httpbin.org/post",
        method="POST",
        data="{}",
        cacert="/etc/sleep/tls/ca.crt",
        cert="/etc/sleep/tls/tls.crt",
        key="/etc/sleep/tls/tls.key",
        resolve=("www.httpbin.org:443:10.96.45.3",),
        connect_timeout=2,
        max_time=4.5,
    )
    argv = request.argv("0123456789abcdef", 99)
    assert argv[argv.index("-X") + 1] == "POST"
    assert argv[argv.index("--data-raw") + 1] == "{}"
    assert argv[argv.index("--cacert") + 1] == "/etc/sleep/tls/ca.crt"
    assert argv[argv.index("--cert") + 1] == "/etc/sleep/tls/tls.crt"
    assert argv[argv.index("--key") + 1] == "/etc/sleep/tls/tls.key"
    assert argv[argv.index("--resolve") + 1] == "www.httpbin.org:443:10.96.45.3"
    assert argv[argv.index("--connect-timeout") + 1] == "2"
    assert request.display() == (
        "curl -s -X POST --data-raw '{}' --cacert /etc/sleep/tls/ca.crt --cert /etc/sleep/tls/tls.crt "
        "--key /etc/sleep/tls/tls.key --resolve www.httpbin.org:443:10.96.45.3 https://www.httpbin.org/post"
    )


def test_token_in_query() -> None:
    assert CurlRequest("http://httpbin.org/anything", token_in_query=True).argv("feedc0de12345678", 5)[-1] == (
        "http://httpbin.org/anything?egress_conformance_probe=feedc0de12345678"
    )
    assert CurlRequest("10.0.0.1/status/418?a=1", token_in_query=True).url_with_token("feedc0de12345678") == (
        "10.0.0.1/status/418?a=1&egress_conformance_probe=feedc0de12345678"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": "-K/etc/passwd"},
        {"url": "http://a", "method": "get"},
        {"url": "http://a", "data": "x"},
        {"url": "http://a", "method": "HEAD", "data": "x"},
        {"url": "http://a", "cert": "/c"},
        {"url": "http://a", "headers": (("bad name", "x"),)},
    ],
)
def test_bad_requests_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CurlRequest(**kwargs)


def test_token_must_be_safe_and_time_positive() -> None:
    request = CurlRequest("http://aliyun.com")
    with pytest.raises(ValueError):
        request.argv("a b", 5)
    with pytest.raises(ValueError):
        request.argv("0123456789abcdef", 0)


# --------------------------------------------------------------------------------------------------
# Parsing


def test_head_301_with_headers() -> None:
    kube = responding(HEAD_301, 301)
    result = Prober(kube, TIMEOUTS, now=fixed_clock()).probe(SLEEP, CurlRequest("http://aliyun.com", method="HEAD"))
    assert result.outcome == http(301)
    assert result.status == 301
    assert result.status_line == "HTTP/1.1 301 Moved Permanently"
    assert result.headers["location"] == "https://aliyun.com/"
    assert result.headers["SERVER"] == "Tengine"
    assert "x-envoy-upstream-service-time" not in result.headers
    assert result.body == ""
    assert result.curl_exit_code == 0
    assert result.display_command == "curl -sI http://aliyun.com"
    assert result.started_at < result.finished_at
    assert result.started_at.tzinfo is UTC
    assert ResponseExpectation(http(301), header_prefixes_absent=("x-envoy-",)).matches(result)


def test_rbac_403_from_envoy() -> None:
    kube = responding(RBAC_403, 403)
    result = Prober(kube, TIMEOUTS).probe(SLEEP, CurlRequest("http://www.aliyun.com", method="GET"))
    assert result.outcome == http(403)
    assert result.body == "RBAC: access denied"
    assert result.headers.get_all("server") == ["envoy"]
    expectation = ResponseExpectation(http(403), header_equals={"server": "envoy"}, body_contains="RBAC: access denied")
    assert expectation.matches(result)
    assert str(expectation) == "http(403), header server: envoy, body contains 'RBAC: access denied'"
    assert "server='envoy'" in result.summary()
    assert "body='RBAC: access denied'" in result.summary()


def test_teapot_418_body() -> None:
    kube = responding(TEAPOT_418, 418)
    result = Prober(kube, TIMEOUTS).probe(
        SLEEP, CurlRequest("10.96.200.10/status/418", headers=(("host", "test.com"),))
    )
    assert result.outcome == http(418)
    assert "teapot" in result.body
    assert result.body.endswith('`"""`\n')
    assert ResponseExpectation(http(418), body_contains="teapot").matches(result)
    assert not ResponseExpectation(http(418), body_contains="RBAC").matches(result)


def test_sidecar_blackhole_502() -> None:
    kube = responding(BLACKHOLE_502, 502)
    result = Prober(kube, TIMEOUTS).probe(SLEEP, CurlRequest("http://aliyun.com", method="HEAD"))
    assert result.outcome == http(502)
    assert result.headers["server"] == "envoy"
    problems = ResponseExpectation(http(301), headers_present=("location",)).mismatches(result)
    assert problems == ["outcome http(502) is not http(301)", "header location absent"]


@pytest.mark.parametrize(
    ("exit_code", "error", "expected"),
    [
        (35, "OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to www.httpbin.org:443", TLS_RESET),
        (56, "Recv failure: Connection reset by peer", TLS_RESET),
        (7, "Failed to connect to 10.96.120.11 port 80 after 1 ms: Couldn't connect to server", CONN_REFUSED),
        (28, "Connection timed out after 5001 milliseconds", TIMEOUT),
        (6, "Could not resolve host: aliyun.com", DNS_FAIL),
        (52, "Empty reply from server", TLS_RESET),
        (1, "Received HTTP/0.9 when not allowed", NON_HTTP_REPLY),
    ],
)
def test_failed_transfers(exit_code: int, error: str, expected: Outcome) -> None:
    kube = responding("", 0, exitcode=exit_code, error=error, stderr=f"curl: ({exit_code}) {error}\n")
    result = Prober(kube, TIMEOUTS).probe(SLEEP, CurlRequest("https://www.httpbin.org"))
    assert result.outcome == expected
    assert result.status is None
    assert result.curl_exit_code == exit_code
    assert result.exec_exit_code == exit_code
    assert result.curl_error == error
    assert f"curl: ({exit_code})" in result.transcript()
    assert (TIMEOUT | CONN_REFUSED).matches(result) == (expected in (TIMEOUT, CONN_REFUSED))


def test_interim_100_continue_is_skipped() -> None:
    payload = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nserver: envoy\r\ncontent-length: 2\r\n\r\nok"
    parsed = parse_response(payload)
    assert parsed.status_line == "HTTP/1.1 200 OK"
    assert parsed.headers["server"] == "envoy"
    assert parsed.body == "ok"


def test_http2_status_line_and_body_that_looks_like_headers() -> None:
    parsed = parse_response("HTTP/2 200 \r\ncontent-type: text/plain\r\n\r\nHTTP/1.1 200 OK\r\n\r\nx")
    assert parsed.status_line == "HTTP/2 200"
    assert parsed.body == "HTTP/1.1 200 OK\r\n\r\nx"


def test_headers_multimap() -> None:
    headers = Headers([("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("Server", " envoy ")])
    assert headers["set-cookie"] == "a=1, b=2"
    assert headers.get_all("SET-COOKIE") == ["a=1", "b=2"]
    assert headers["server"] == "envoy"
    assert list(headers) == ["set-cookie", "server"]
    assert len(headers) == 2
    assert headers.get("location") is None
    assert headers.names_with_prefix("SET-") == ["set-cookie"]
    assert headers == Headers([("set-cookie", "a=1"), ("SET-COOKIE", "b=2"), ("server", "envoy")])


def test_body_is_bounded() -> None:
    payload = "HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\n" + "x" * 200_000
    kube = responding(payload, 200)
    result = Prober(kube, TIMEOUTS, body_limit=65536).probe(SLEEP, CurlRequest("http://httpbin.org/bytes/200000"))
    assert len(result.body) == 65536
    assert result.body_truncated


def test_output_without_marker_is_a_probe_error() -> None:
    kube = ScriptedKube(
        lambda cmd: ExecResult("", 'OCI runtime exec failed: exec: "curl": executable file not found', 127)
    )
    with pytest.raises(ProbeError, match=r"write-out marker.*exec exit 127.*executable file not found"):
        Prober(kube, TIMEOUTS).probe(SLEEP, CurlRequest("http://aliyun.com"))


@pytest.mark.parametrize(
    ("exit_code", "error"),
    [(3, "URL rejected: Malformed input to a URL function"), (77, "error setting certificate file: /nope/ca.crt")],
)
def test_local_curl_failures_are_probe_errors_not_outcomes(exit_code: int, error: str) -> None:
    kube = responding("", 0, exitcode=exit_code, error=error)
    with pytest.raises(ProbeError, match=f"exit {exit_code}.*{error}"):
        Prober(kube, TIMEOUTS).probe(SLEEP, CurlRequest("https://www.httpbin.org", cacert="/nope/ca.crt"))


def test_write_out_that_is_not_json_is_a_probe_error() -> None:
    kube = ScriptedKube(lambda cmd: ExecResult(writeout_marker(token_of(cmd)) + "{not json", "", 0))
    with pytest.raises(ProbeError, match="not JSON"):
        Prober(kube, TIMEOUTS).probe(SLEEP, CurlRequest("http://aliyun.com"))


# --------------------------------------------------------------------------------------------------
# Prober


def test_prober_exec_call_and_unique_tokens() -> None:
    kube = responding(HEAD_301, 301)
    prober = Prober(kube, TIMEOUTS)
    first = prober.probe(SLEEP, CurlRequest("http://aliyun.com", method="HEAD"))
    second = prober.probe(SLEEP, CurlRequest("http://aliyun.com", method="HEAD"))
    assert first.token != second.token
    assert len(first.token) == 16
    for result, (namespace, pod, command, container, timeout) in zip((first, second), kube.calls, strict=True):
        assert (namespace, pod, container) == ("default", "sleep-5c4f8d9b7d-kq2xz", "sleep")
        assert result.token in " ".join(command)
        assert tuple(command) == result.command
        max_time = float(command[command.index("--max-time") + 1])
        assert max_time == TIMEOUTS.request
        assert timeout > max_time  # curl gives up before the exec does
    assert first.user_agent == f"egress-conformance/{first.token}"


def test_label_selector_picks_the_first_ready_pod() -> None:
    kube = responding(HEAD_301, 301)
    kube.pod_list = [
        PodInfo("mytest", "sleep-a-2", "10.244.0.22", "Running", True, ("sleep", "istio-proxy")),
        PodInfo("mytest", "sleep-a-0", "10.244.0.20", "Pending", False, ("sleep", "istio-proxy")),
        PodInfo("mytest", "sleep-a-1", "10.244.0.21", "Running", True, ("sleep", "istio-proxy")),
    ]
    target = PodTarget("mytest", label_selector="app=sleep-a", container="sleep")
    result = Prober(kube, TIMEOUTS, token_factory=lambda: "aaaabbbbccccdddd").probe(
        target, CurlRequest("http://www.httpbin.org")
    )
    assert (result.pod, result.pod_ip) == ("sleep-a-1", "10.244.0.21")
    assert result.token == "aaaabbbbccccdddd"
    assert kube.calls[0][1] == "sleep-a-1"


def test_no_ready_pod_is_a_probe_error() -> None:
    kube = responding(HEAD_301, 301)
    kube.pod_list = [PodInfo("mytest", "sleep-a-0", None, "Pending", False, ("sleep",))]
    with pytest.raises(ProbeError, match=r"no ready pod.*sleep-a-0 \(Pending"):
        Prober(kube, TIMEOUTS).probe(PodTarget("mytest", label_selector="app=sleep-a"), CurlRequest("http://a"))
    assert kube.calls == []


def test_pod_target_needs_exactly_one_selector() -> None:
    with pytest.raises(ValueError):
        PodTarget("default")
    with pytest.raises(ValueError):
        PodTarget("default", pod="x", label_selector="app=x")
    assert str(PodTarget("default", label_selector="app=sleep", container="sleep")) == "default/[app=sleep] (sleep)"


# --------------------------------------------------------------------------------------------------
# Real curl on loopback


class _Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str, str]]] = []

    def _answer(self, with_body: bool) -> None:
        self.seen.append((self.command, self.path, self.headers.get("user-agent", "")))
        if self.path.startswith("/status/418"):
            status, body, extra = 418, b"I'm a teapot\n", {}
        else:
            status, body, extra = 301, b"<html>moved</html>\n", {"Location": "https://aliyun.com/"}
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self._answer(with_body=True)

    def log_message(self, format: str, *args: Any) -> None:
        return


class LocalExec:
    """Kube stand-in whose exec runs the argv on this machine."""

    def exec(self, namespace: str, pod: str, command: list[str], container: str | None, timeout: float) -> ExecResult:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        return ExecResult(done.stdout, done.stderr, done.returncode)

    def pods(self, namespace: str, label_selector: str) -> list[PodInfo]:
        return []


@pytest.fixture
def origin() -> Iterator[str]:
    if shutil.which("curl") is None:
        pytest.skip("no curl on this machine")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    # A short poll interval: shutdown() waits for the serving loop to notice it.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    _Origin.seen = []
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_real_curl_head_get_post(origin: str) -> None:
    prober = Prober(LocalExec(), Timeouts(request=5))
    head = prober.probe(SLEEP, CurlRequest(f"http://{origin}/", method="HEAD"))
    assert head.outcome == http(301)
    assert head.headers["location"] == "https://aliyun.com/"
    assert head.body == ""
    teapot = prober.probe(SLEEP, CurlRequest(f"{origin}/status/418", headers=(("host", "test.com"),)))
    assert teapot.outcome == http(418)
    assert teapot.body == "I'm a teapot\n"
    post = prober.probe(SLEEP, CurlRequest(f"http://{origin}/status/418", method="POST", data="x", token_in_query=True))
    assert post.outcome == http(418)
    assert _Origin.seen == [
        ("HEAD", "/", f"egress-conformance/{head.token}"),
        ("GET", "/status/418", f"egress-conformance/{teapot.token}"),
        ("POST", f"/status/418?egress_conformance_probe={post.token}", f"egress-conformance/{post.token}"),
    ]
    assert post.curl_info["remote_port"] == int(origin.rsplit(":", 1)[1])


PEER_NAME = "probe.test"
REQUEST_END = b"\r\n\r\n"


def _read_request(connection: socket.socket) -> None:
    """Read what curl sends first (a request, or a ClientHello on a plain port) in one go."""
    connection.settimeout(5)
    connection.recv(65536)


def _reset(connection: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


@dataclass
class LoopbackPeer:
    """A TCP (optionally TLS) server on 127.0.0.1 that treats each connection with one behaviour."""

    behaviour: Callable[[socket.socket, threading.Event], None]
    tls: ssl.SSLContext | None = None
    accept: bool = True
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=16)
        self.port = self.listener.getsockname()[1]
        if self.accept:
            threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            try:
                if self.tls is not None:
                    connection.settimeout(5)
                    connection = self.tls.wrap_socket(connection, server_side=True)
                self.behaviour(connection, self.stop)
            except (OSError, ssl.SSLError):
                pass  # the client gave up or the handshake failed: that is what some rows test
            finally:
                connection.close()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def _answer(payload: bytes) -> Callable[[socket.socket, threading.Event], None]:
    def behaviour(connection: socket.socket, stop: threading.Event) -> None:
        _read_request(connection)
        connection.sendall(payload)

    return behaviour


def _answer_then_hold(payload: bytes) -> Callable[[socket.socket, threading.Event], None]:
    def behaviour(connection: socket.socket, stop: threading.Event) -> None:
        _read_request(connection)
        connection.sendall(payload)
        stop.wait(10)  # until the test ends: curl gives up first

    return behaviour


def _reads_then_resets(connection: socket.socket, stop: threading.Event) -> None:
    _read_request(connection)
    _reset(connection)


TEAPOT = b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 13\r\nConnection: close\r\n\r\nI'm a teapot\n"
BEHAVIOURS: dict[str, Callable[[socket.socket, threading.Event], None]] = {
    "answers-418": _answer(TEAPOT),
    "plain-http-server": _answer(TEAPOT),
    "headers-then-stalled-body": _answer_then_hold(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"),
    "headers-then-cut-body": _answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"),
    "header-without-colon": _answer(b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n"),
    "reads-then-closes": _answer(b""),
    "reads-then-resets": _reads_then_resets,
    "tls1.2-requires-client-certificate": _answer(TEAPOT),
    "tls1.3-requires-client-certificate": _answer(TEAPOT),
    "banner": _answer(b"SSH-2.0-OpenSSH_9.6\r\n"),
    "tls-alert-on-plain-port": _answer(b"\x15\x03\x01\x00\x02\x02\x46"),
    "unparseable-status-code": _answer(b"HTTP/1.1 2\r\n\r\n"),
    "certificate-of-another-ca": _answer(TEAPOT),
    "closes-at-accept": lambda connection, stop: None,
}


@dataclass(frozen=True)
class PeerPki:
    ca_file: str
    own: RunPKI
    other: RunPKI


@pytest.fixture(scope="module")
def peer_pki(tmp_path_factory: pytest.TempPathFactory) -> PeerPki:
    if shutil.which("curl") is None:
        pytest.skip("no curl on this machine")
    own = RunPKI.generate({"peer": [PEER_NAME]})
    directory = tmp_path_factory.mktemp("peer-pki")
    return PeerPki(str(own.write(directory)["ca.crt"]), own, RunPKI.generate({"peer": [PEER_NAME]}))


def _server_context(pki: RunPKI, version: ssl.TLSVersion, *, require_client_certificate: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = context.maximum_version = version
    with tempfile.TemporaryDirectory() as directory:
        files = pki.write(Path(directory))
        context.load_cert_chain(files["peer.crt"], files["peer.key"])
        if require_client_certificate:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(files["ca.crt"])
    return context


def start_peer(scheme: str, behaviour: str, pki: PeerPki) -> LoopbackPeer:
    tls: ssl.SSLContext | None = None
    if scheme == "https" and behaviour != "plain-http-server":
        version = ssl.TLSVersion.TLSv1_2 if behaviour.startswith("tls1.2") else ssl.TLSVersion.TLSv1_3
        signer = pki.other if behaviour == "certificate-of-another-ca" else pki.own
        tls = _server_context(signer, version, require_client_certificate="client-certificate" in behaviour)
    return LoopbackPeer(BEHAVIOURS.get(behaviour, _answer(b"")), tls, accept=behaviour != "never-answers")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def probe_peer(scheme: str, behaviour: str, pki: PeerPki) -> ProbeResult:
    """Run real curl, through a Prober, against a loopback peer behaving this way."""
    prober = Prober(LocalExec(), Timeouts(request=5))
    # Rows that end in curl's own timeout wait for it: short, but long enough for a loaded machine's
    # server thread to send the headers of a stalled body first.
    max_time = {"never-answers": 0.25, "headers-then-stalled-body": 0.5}.get(behaviour)
    if behaviour == "unresolvable-name":
        return prober.probe(SLEEP, CurlRequest(f"{scheme}://egress-conformance.invalid/", max_time=3))
    if behaviour == "closed-port":
        port, peer = free_port(), None
    else:
        peer = start_peer(scheme, behaviour, pki)
        port = peer.port
    request = CurlRequest(
        f"{scheme}://{PEER_NAME}:{port}/",
        cacert=pki.ca_file if scheme == "https" else None,
        resolve=(f"{PEER_NAME}:{port}:127.0.0.1",),
        max_time=max_time,
    )
    try:
        return prober.probe(SLEEP, request)
    finally:
        if peer is not None:
            peer.close()


_OBSERVABLE = sorted({(row[0], row[4]) for row in CLASSIFICATION if row[4] is not None})


@pytest.mark.parametrize(("scheme", "behaviour"), _OBSERVABLE, ids=[f"{s}-{b}" for s, b in _OBSERVABLE])
def test_real_curl_gives_the_tabled_outcome(scheme: str, behaviour: str, peer_pki: PeerPki) -> None:
    result = probe_peer(scheme, behaviour, peer_pki)
    if behaviour == "unresolvable-name" and result.curl_exit_code == 28:
        pytest.skip("this machine's resolver does not answer for .invalid names")
    observed = (result.curl_exit_code, result.status is not None)
    rows = {(row[1], row[2]): row[3] for row in CLASSIFICATION if (row[0], row[4]) == (scheme, behaviour)}
    assert observed in rows, f"{scheme} {behaviour}: curl gave {result.summary()}, table has {sorted(rows)}"
    assert result.outcome == rows[observed]


@pytest.mark.parametrize(("scheme", "outcome"), [("http", CONN_RESET), ("https", TLS_RESET)], ids=["http", "https"])
def test_one_behaviour_gives_one_outcome(scheme: str, outcome: Outcome, peer_pki: PeerPki) -> None:
    """A peer closing right after accept makes curl exit 52 or 56 (http) at random: one outcome all the same."""
    peer = LoopbackPeer(BEHAVIOURS["closes-at-accept"])
    prober = Prober(LocalExec(), Timeouts(request=5))
    request = CurlRequest(
        f"{scheme}://{PEER_NAME}:{peer.port}/", cacert=peer_pki.ca_file, resolve=(f"{PEER_NAME}:{peer.port}:127.0.0.1",)
    )
    try:
        results = [prober.probe(SLEEP, request) for _ in range(12)]
    finally:
        peer.close()
    assert {r.outcome for r in results} == {outcome}, [r.summary() for r in results]
    assert {r.curl_exit_code for r in results} <= {35, 52, 55, 56}


def test_probe_result_is_a_typed_record() -> None:
    kube = responding(HEAD_301, 301)
    result = Prober(kube, TIMEOUTS).probe(SLEEP, CurlRequest("http://aliyun.com", method="HEAD"))
    assert isinstance(result, ProbeResult)
    text = result.transcript()
    assert text.startswith("$ kubectl -n default exec sleep-5c4f8d9b7d-kq2xz -- curl -sI http://aliyun.com")
    assert "HTTP/1.1 301 Moved Permanently" in text
    assert "Location: https://aliyun.com/" in text
    assert "# remote 10.96.120.11:80" in text
