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

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from conformance.core.timeouts import Timeouts
from conformance.kube.api import ExecResult, PodInfo
from conformance.probe.outcomes import (
    CURL_EXIT_DESCRIPTIONS,
    LOCAL_FAILURE_EXIT_CODES,
    SCHEMES,
    ProbeError,
    outcome_from_curl,
)
from conformance.probe.responses import (
    BODY_LIMIT,
    TOKEN_QUERY_PARAMETER,
    USER_AGENT_PREFIX,
    ProbeResult,
    parse_curl_output,
    shell_quote,
    writeout_marker,
)

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
        return " ".join(shell_quote(w) for w in words)

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


# --------------------------------------------------------------------------------------------------
# Prober


class ExecKube(Protocol):
    """The part of ``conformance.kube.api.Kube`` a Prober needs."""

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
    as ``tolerated`` to ``conformance.core.expect``.
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
