"""What an engineer needs to see why a check failed, without running it again.

When a check fails on a cluster, :func:`collect` writes into ``<report dir>/evidence/<check>-<mode>/``:

* the check's recorded actions (``actions.json``: manifests applied, probes, log assertions);
* the proxy logs of the clients (sidecar mode) and of the egress gateway or waypoint, since the check
  started; ztunnel's logs in ambient mode;
* ``istioctl proxy-config listeners|routes|clusters`` of the client sidecars and the gateway or waypoint;
* the events of the check's namespaces and ``istioctl analyze`` of each of them.

Every file is scrubbed (``conformance.core.redaction``), bounded (the newest part of a log, the start of a
command's output), hashed, and attached to the check's Allure result. Collecting never raises: whatever
cannot be collected is recorded with its reason, and the check's own failure stays the one reported.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, Protocol, runtime_checkable

from conformance.core import evidence, redaction
from conformance.engine.check_run import CheckRun
from conformance.engine.runtime import Dataplane, LogSource, ProxyKind, Workload
from conformance.istio.components import ISTIO_NAMESPACE
from conformance.world.workloads import SIDECAR_CONTAINER

_P = ParamSpec("_P")

EVIDENCE_DIR = "evidence"
#: One file never exceeds this: a log keeps its newest part, a command's output its start.
MAX_FILE_BYTES = 256 * 1024
#: One failed check's evidence never exceeds this in total; files beyond it are skipped (and recorded).
MAX_CHECK_BYTES = 4 * 1024 * 1024
#: Proxy logs are read from this long before the check started (clock skew, a slow first request).
LOG_MARGIN = timedelta(seconds=5)
#: At most this many pods of one proxy (replicas of a gateway, ztunnel per node) are read.
MAX_PODS_PER_PROXY = 3
#: The most recent events kept per namespace.
MAX_EVENTS = 300
PROXY_CONFIG_KINDS = ("listeners", "routes", "clusters")
PROXY_CONTAINER = SIDECAR_CONTAINER
ZTUNNEL_NAMESPACE = ISTIO_NAMESPACE
ZTUNNEL_SELECTOR = "app=ztunnel"
#: ``istioctl analyze`` exits with this code when it found issues: a result, not a failure to collect.
ANALYZE_FOUND_ISSUES = 79


@dataclass(frozen=True)
class CommandOutput:
    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class ClusterAccess:
    """How to reach the cluster from a shell: for istioctl here, and for the engineer after a kept failure."""

    kubeconfig: Path
    context: str | None

    def flags(self) -> list[str]:
        return ["--kubeconfig", str(self.kubeconfig), *(["--context", self.context] if self.context else [])]


class Diagnostics(Protocol):
    """What evidence collection reads from a cluster (the live runtime provides it)."""

    @property
    def access(self) -> ClusterAccess: ...

    def logs(self, namespace: str, selector: str, container: str, since: datetime) -> dict[str, str]: ...

    def pod_names(self, namespace: str, selector: str) -> list[str]: ...

    def events(self, namespace: str) -> list[dict[str, Any]]: ...

    def istioctl(self, args: Sequence[str]) -> CommandOutput:
        """Run istioctl with these arguments and the cluster flags, bounded in time."""
        ...


@dataclass(frozen=True)
class EvidenceFile:
    #: Path relative to the report directory, with forward slashes.
    path: str
    what: str
    sha256: str
    bytes: int
    truncated: bool

    def record(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "what": self.what,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "truncated": self.truncated,
        }


@dataclass
class EvidenceCollection:
    """The evidence of one failed check: the files written and what could not be collected."""

    check_id: str
    mode: str
    directory: Path
    files: list[EvidenceFile] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)


@runtime_checkable
class EvidenceSource(Protocol):
    """A runtime that can collect a failed check's evidence (the live one; a plan has none)."""

    def collect_failure_evidence(self, run: CheckRun, report_dir: Path) -> EvidenceCollection: ...

    def cluster_access(self) -> ClusterAccess: ...


def check_directory(report_dir: Path, check_id: str, mode: str) -> Path:
    return report_dir / EVIDENCE_DIR / _safe(f"{check_id}-{mode}")


class _Writer:
    """Writes evidence files: scrubbed, bounded, hashed, within the check's budget, attached to Allure."""

    def __init__(self, collection: EvidenceCollection, report_dir: Path, attach: bool) -> None:
        self.collection = collection
        self.report_dir = report_dir
        self.attach = attach

    def write(self, name: str, what: str, text: str, *, keep: str = "tail") -> None:
        used = self.collection.total_bytes
        if used >= MAX_CHECK_BYTES:
            self.collection.errors.append(f"{what}: skipped, the evidence budget of {MAX_CHECK_BYTES} bytes is used up")
            return
        data, truncated = bounded(redaction.scrub(text), min(MAX_FILE_BYTES, MAX_CHECK_BYTES - used), keep=keep)
        path = self.collection.directory / _safe(name)
        path.write_bytes(data)
        relative = path.relative_to(self.report_dir).as_posix()
        record = EvidenceFile(relative, what, hashlib.sha256(data).hexdigest(), len(data), truncated)
        self.collection.files.append(record)
        if self.attach:
            try:
                evidence.attach_evidence_file(path, what)
            except Exception as exc:  # Allure is a convenience; the file is written either way
                self.collection.errors.append(f"{what}: not attached to the Allure result: {exc}")


def bounded(text: str, limit: int, *, keep: str = "tail") -> tuple[bytes, bool]:
    """The text as UTF-8 within ``limit`` bytes (its end for a log, its start for command output)."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return data, False
    note_tail = b"[... earlier output cut: evidence files are bounded ...]\n"
    note_head = b"\n[... the rest cut: evidence files are bounded ...]\n"
    room = limit - max(len(note_tail), len(note_head))
    if room <= 0:  # no room even for the note: the bare bytes that fit
        cut = data[-limit:] if keep == "tail" else data[:limit]
        return cut.decode("utf-8", "ignore").encode("utf-8") if limit > 0 else b"", True
    if keep == "tail":
        body = data[-room:] if room else b""
        # Start at a line boundary and on a whole character.
        newline = body.find(b"\n")
        body = body[newline + 1 :] if 0 <= newline < len(body) - 1 else body
        return note_tail + body.decode("utf-8", "ignore").encode("utf-8"), True
    body = data[:room].decode("utf-8", "ignore").encode("utf-8")
    return body + note_head, True


def collect(
    run: CheckRun,
    mode: str,
    diagnostics: Diagnostics,
    report_dir: Path,
    *,
    attach: bool = True,
) -> EvidenceCollection:
    """Collect the evidence of a failed check run. Never raises."""
    check_id = str(run.check.id)
    directory = check_directory(report_dir, check_id, mode)
    collection = EvidenceCollection(check_id, mode, directory)
    try:
        if directory.exists():
            shutil.rmtree(directory)  # an earlier run's evidence of the same check would mislead
        directory.mkdir(parents=True)
    except OSError as exc:
        collection.errors.append(f"evidence directory {directory}: {exc}")
        return collection
    writer = _Writer(collection, report_dir, attach)
    since = run.started_at - LOG_MARGIN
    actions = json.dumps(run.actions.as_dict(), indent=2)
    _attempt(collection, "recorded actions", writer.write, "actions.json", "recorded actions", actions, keep="head")
    clients: Mapping[str, Workload] = run.clients
    for workload in clients.values():
        if workload.dataplane is not Dataplane.SIDECAR:
            continue  # outside the mesh, or ambient: the client has no proxy of its own
        label, prefix = f"client {workload.ref}", f"client-{workload.namespace}-{workload.spec.name}"
        _attempt(
            collection,
            f"{label} proxy log",
            _proxy_logs,
            writer,
            diagnostics,
            f"{label} proxy log",
            prefix,
            workload.namespace,
            workload.spec.selector,
            PROXY_CONTAINER,
            since,
        )
        for kind in PROXY_CONFIG_KINDS:
            _attempt(
                collection,
                f"{label} proxy-config {kind}",
                _proxy_config,
                writer,
                diagnostics,
                f"{label} proxy-config {kind}",
                prefix,
                kind,
                f"{workload.pod}.{workload.namespace}",
            )
    proxies: Mapping[str, LogSource] = run.proxies
    for source in proxies.values():
        if source.kind is ProxyKind.SIDECAR:
            continue  # a client's own sidecar: collected with the clients above
        label, prefix = f"{source.kind.value} {source.workload}", f"{source.kind.value}-{source.workload}"
        _attempt(
            collection,
            f"{label} log",
            _proxy_logs,
            writer,
            diagnostics,
            f"{label} log",
            prefix,
            source.namespace,
            source.selector,
            source.container,
            since,
        )
        _attempt(collection, f"{label} proxy-config", _proxy_configs_of, writer, diagnostics, label, prefix, source)
    if mode == "ambient":
        _attempt(
            collection,
            "ztunnel log",
            _proxy_logs,
            writer,
            diagnostics,
            "ztunnel log",
            "ztunnel",
            ZTUNNEL_NAMESPACE,
            ZTUNNEL_SELECTOR,
            PROXY_CONTAINER,
            since,
        )
    for namespace in scenario_namespaces(run):
        _attempt(collection, f"events of {namespace}", _events, writer, diagnostics, namespace)
        _attempt(collection, f"istioctl analyze -n {namespace}", _analyze, writer, diagnostics, namespace)
    return collection


def scenario_namespaces(run: CheckRun) -> list[str]:
    """The namespaces a check touched: its clients', its proxies', and those of every object it applied."""
    names: set[str] = {w.namespace for w in run.clients.values()}
    names |= {s.namespace for s in run.proxies.values()}
    for action in run.actions.actions:
        for resource in action.fields.get("resources") or []:
            metadata = resource.get("metadata") if isinstance(resource, dict) else None
            namespace = (metadata or {}).get("namespace") if metadata is not None else resource.get("namespace")
            if namespace:
                names.add(str(namespace))
    return sorted(names)


def format_events(events: Iterable[Mapping[str, Any]]) -> str:
    """One line per event, oldest first: time, type, reason, object, count, message."""
    rows = []
    for event in events:
        when = (
            event.get("lastTimestamp")
            or event.get("eventTime")
            or event.get("firstTimestamp")
            or (event.get("metadata") or {}).get("creationTimestamp")
            or ""
        )
        involved = event.get("involvedObject") or {}
        target = f"{involved.get('kind', '?')}/{involved.get('name', '?')}"
        count = event.get("count") or (event.get("series") or {}).get("count") or 1
        message = " ".join(str(event.get("message") or "").split())
        rows.append(
            (str(when), f"{when} {event.get('type', '')} {event.get('reason', '')} {target} x{count}: {message}")
        )
    rows.sort(key=lambda row: row[0])
    kept = rows[-MAX_EVENTS:]
    header = f"# {len(rows)} event(s)" + (f", the last {MAX_EVENTS} shown" if len(rows) > MAX_EVENTS else "")
    return "\n".join([header, *(line for _, line in kept)]) + "\n"


# ---------------------------------------------------------------------------------------------- helpers


def _attempt(
    collection: EvidenceCollection, what: str, action: Callable[_P, None], *args: _P.args, **kwargs: _P.kwargs
) -> None:
    try:
        action(*args, **kwargs)
    except Exception as exc:  # recorded, never raised: the check's own failure must stay the one reported
        collection.errors.append(redaction.scrub(f"{what}: {type(exc).__name__}: {exc}"))


def _events(writer: _Writer, diagnostics: Diagnostics, namespace: str) -> None:
    writer.write(
        f"events-{namespace}.txt", f"events of namespace {namespace}", format_events(diagnostics.events(namespace))
    )


def _proxy_logs(
    writer: _Writer,
    diagnostics: Diagnostics,
    what: str,
    prefix: str,
    namespace: str,
    selector: str,
    container: str,
    since: datetime,
) -> None:
    texts = diagnostics.logs(namespace, selector, container, since)
    if not texts:
        writer.collection.errors.append(f"{what}: no pod in {namespace} matches {selector}")
        return
    for pod in sorted(texts)[:MAX_PODS_PER_PROXY]:
        header = f"# kubectl -n {namespace} logs {pod} -c {container} --since-time={since.isoformat()}\n"
        writer.write(f"{prefix}-{pod}-{container}.log", f"{what} ({pod})", header + texts[pod])


def _proxy_configs_of(writer: _Writer, diagnostics: Diagnostics, label: str, prefix: str, source: LogSource) -> None:
    pods = diagnostics.pod_names(source.namespace, source.selector)
    if not pods:
        writer.collection.errors.append(f"{label} proxy-config: no pod in {source.namespace} matches {source.selector}")
        return
    for pod in pods[:MAX_PODS_PER_PROXY]:
        for kind in PROXY_CONFIG_KINDS:
            what = f"{label} proxy-config {kind} ({pod})"
            _attempt(
                writer.collection,
                what,
                _proxy_config,
                writer,
                diagnostics,
                what,
                f"{prefix}-{pod}",
                kind,
                f"{pod}.{source.namespace}",
            )


def _proxy_config(writer: _Writer, diagnostics: Diagnostics, what: str, prefix: str, kind: str, target: str) -> None:
    args = ["proxy-config", kind, target]
    output = diagnostics.istioctl(args)
    writer.write(f"{prefix}-proxy-config-{kind}.txt", what, _command_text(diagnostics, args, output), keep="head")
    if output.exit_code != 0:
        writer.collection.errors.append(f"{what}: istioctl exited with {output.exit_code}")


def _analyze(writer: _Writer, diagnostics: Diagnostics, namespace: str) -> None:
    args = ["analyze", "--namespace", namespace, "--color=false"]
    output = diagnostics.istioctl(args)
    what = f"istioctl analyze of namespace {namespace}"
    writer.write(f"analyze-{namespace}.txt", what, _command_text(diagnostics, args, output), keep="head")
    if output.exit_code not in (0, ANALYZE_FOUND_ISSUES):
        writer.collection.errors.append(f"{what}: istioctl exited with {output.exit_code}")


def _command_text(diagnostics: Diagnostics, args: Sequence[str], output: CommandOutput) -> str:
    shown = shlex.join(["istioctl", *args, *diagnostics.access.flags()])
    parts = [f"$ {shown}", f"# exit code {output.exit_code}", output.stdout.rstrip()]
    if output.stderr.strip():
        parts += ["# stderr", output.stderr.rstrip()]
    return "\n".join(parts) + "\n"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("_") or "evidence"
